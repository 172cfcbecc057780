"""The demo's story, step by step, each through the real subsystems.

data (contract, quarantine, versions) -> features (entity, view, service, point-in-time
training set) -> tracked training runs -> evaluation against business targets -> the
registry's ``champion`` -> the HTTP service and its prediction log -> a shifted batch ->
the monitor's alert -> the closed-loop policy: retrain, gates, promote or reject.
Every figure shown is read back from the stores; :class:`StoryLog` keeps them for the
HTML report (``demo_report``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.cli.demo_data import Prepared, Roles
from shipyard.core.errors import IntegrityError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from shipyard.core.config import Config
    from shipyard.evaluation.gates import Gate

__all__ = ["Names", "Story", "StoryLog", "Targets", "fmt"]


@dataclass(frozen=True)
class Targets:
    """The business targets every candidate and challenger is held to."""

    at_precision: float = 0.80
    min_recall: float = 0.60
    min_auc: float = 0.75
    p99_ms: float = 200.0
    max_gap: float = 0.20
    max_drop: float = 0.02

    def gates(self, fairness_by: str | None, *, with_champion: bool) -> list[Gate]:
        from shipyard.evaluation import gates as g

        gates: list[Gate] = [
            g.recall_at_precision(self.at_precision, min_recall=self.min_recall),
            g.metric("roc_auc", ">=", self.min_auc),
            g.latency(p99_ms=self.p99_ms, samples=100, max_seconds=10.0),
        ]
        if fairness_by:
            gates.append(g.fairness(metric="recall", by=fairness_by, max_gap=self.max_gap))
        if with_champion:
            gates.append(g.champion(metric="roc_auc", max_drop=self.max_drop))
        return gates


@dataclass(frozen=True)
class Names:
    """The names the story gives things in the project."""

    model: str
    entity_table: str
    view: str
    service: str
    train: str
    holdout: str


@dataclass
class StoryLog:
    """Everything the story showed, for the report and the tests."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, title: str, lines: list[str], seconds: float, **facts: Any) -> None:
        self.steps.append({"title": title, "lines": lines, "seconds": seconds})
        self.facts.update(facts)


class Story:
    """Runs the steps on one project; ``out`` is where the narration goes."""

    def __init__(
        self,
        config: Config,
        prepared: Prepared,
        names: Names,
        targets: Targets,
        out: Console,
        *,
        traffic: int,
    ) -> None:
        self.config = config
        self.data = prepared
        self.roles: Roles = prepared.roles
        self.names = names
        self.targets = targets
        self.out = out
        self.traffic = traffic
        self.log = StoryLog()
        self.now = datetime.now(UTC).replace(microsecond=0)
        self._lines: list[str] = []
        self._deferred: list[str] | None = None
        self.plural = f"{self.roles.entity}s"
        self.table_file = config.project_dir / "data" / f"{names.entity_table}.csv"
        self._number = 0

    # --- narration ----------------------------------------------------------------------

    @contextmanager
    def step(self, title: str) -> Iterator[dict[str, Any]]:
        self._number += 1
        self.out.rule(f"[bold]{self._number}. {title}")
        self._lines = []
        facts: dict[str, Any] = {}
        started = time.perf_counter()
        yield facts
        self.log.add(title, self._lines, time.perf_counter() - started, **facts)

    def say(self, text: str) -> None:
        self._lines.append(text)
        if self._deferred is not None:
            self._deferred.append(text)
        else:
            self.out.print(text, highlight=False)

    @contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Any]:
        """A progress bar on a terminal; lines said meanwhile are shown after it."""

        if not self.out.is_terminal:
            yield lambda done=1: None
            return
        self._deferred = []
        try:
            with self._progress(description, total) as advance:
                yield advance
        finally:
            lines, self._deferred = self._deferred, None
            for line in lines:
                self.out.print(line, highlight=False)

    @contextmanager
    def _progress(self, description: str, total: int | None) -> Iterator[Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        progress = Progress(
            "  [progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.out,
            transient=True,
        )
        with progress:
            task = progress.add_task(description, total=total)

            def advance(done: int = 1) -> None:
                progress.advance(task, done)

            yield advance

    # --- 1. data ------------------------------------------------------------------------

    def _contract(self) -> Any:
        import shipyard.data as sd

        roles, history = self.roles, self.data.history
        broken = {c.row_id for c in self.data.corruptions}
        clean = history[~history[roles.id_column].isin(broken)]
        everything = [clean, self.data.batch]
        columns: dict[str, Any] = {
            roles.id_column: sd.Column("int64", nullable=False, unique=True),
            roles.time_column: sd.Column("timestamp_tz", nullable=False),
            roles.target: sd.Column(
                "string", nullable=False, allowed=[roles.positive, roles.negative]
            ),
        }
        for name in roles.numeric:
            low = min(float(frame[name].min()) for frame in everything)
            kind = "int64" if history[name].dtype.kind in "iu" else "float64"
            columns[name] = sd.Column(kind, min=0 if low >= 0 else None)
        for name in roles.categorical:
            seen = sorted({str(v) for frame in everything for v in frame[name].dropna()})
            columns[name] = sd.Column("string", allowed=seen if len(seen) <= 200 else None)
        return sd.Contract(columns=columns, max_quarantine_fraction=0.05)

    def _write_csv(self, frame: pd.DataFrame, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = frame.copy()
        out[self.roles.time_column] = [t.isoformat() for t in out[self.roles.time_column]]
        out.to_csv(path, index=False)

    def _ingest(self, frame: pd.DataFrame, path: Path) -> Any:
        from shipyard.data.client import DatasetClient

        self._write_csv(frame, path)
        quarantine = self.config.project_dir / "data" / f"{path.stem}.quarantine.parquet"
        with (
            DatasetClient.open(self.config) as client,
            self.bar(f"ingesting {path.name}", None) as advance,
        ):
            seen: dict[str, int] = {}

            def progress(stage: str, done: int, total: int | None) -> None:
                advance(max(0, done - seen.get(stage, 0)))
                seen[stage] = done

            return client.ingest(
                self.names.entity_table,
                str(path),
                contract=self._contract(),
                quarantine_path=quarantine,
                progress=progress,
                description=f"the demo's {self.roles.entity} table",
            )

    def ingest(self) -> None:
        roles, data = self.roles, self.data
        with self.step("Ingest the data through a contract") as facts:
            added = []
            if roles.id_added:
                added.append(f"an id per row ({roles.id_column})")
            if roles.time_added:
                added.append(f"event times ({roles.time_column}) spread over the past 6 months")
            self.say(
                f"Source: {data.source} ({len(data.history) + len(data.batch):,} labelled rows). "
                f"It has no "
                + " and no ".join(
                    w for w, a in (("ids", roles.id_added), ("event times", roles.time_added)) if a
                )
                + " and no dirty rows."
                if added
                else f"Source: {data.source}."
            )
            self.say(
                "The demo adds, openly: "
                + "; ".join(
                    [
                        *added,
                        f"{len(data.corruptions)} corrupted rows "
                        f"({', '.join(sorted({c.why for c in data.corruptions}))})",
                    ]
                )
                + f"; and holds back the newest {len(data.batch):,} {self.plural} as a later batch."
            )
            result = self._ingest(data.history, self.table_file)
            report = result.report
            self.say(
                f"Contract: {report.rows_read:,} rows read, {report.rows_passed:,} passed, "
                f"[bold]{report.rows_quarantined} quarantined[/] with their reasons "
                f"(data/{self.table_file.stem}.quarantine.parquet)."
            )
            for rule in report.rule_counts[:6]:
                where = f" on {rule.column}" if rule.column else ""
                self.say(f"  rule {rule.rule}{where}: {rule.count} row(s)")
            self.say(
                f"Stored as [bold]{result.version.reference}[/] "
                f"(content id {result.version.content_id.split(':')[-1][:12]}), immutable."
            )
            facts["roles"] = {
                "target": roles.target,
                "positive": roles.positive,
                "id_column": roles.id_column,
                "time_column": roles.time_column,
                "numeric": list(roles.numeric),
                "categorical": list(roles.categorical),
                "shift": list(roles.shift),
                "fairness_by": roles.fairness_by,
            }
            facts["quarantined"] = report.rows_quarantined
            facts["rows_passed"] = report.rows_passed
            facts["table_v1"] = str(result.version.reference)
            facts["corrupted_ids"] = sorted(c.row_id for c in data.corruptions)

    # --- 2. features --------------------------------------------------------------------

    def _feature_types(self) -> dict[str, str]:
        from shipyard.data.client import DatasetClient

        with DatasetClient.open(self.config) as client:
            table = client.read_table(self.names.entity_table)
        return {name: str(table.schema.field(name).type) for name in self.roles.features}

    def define_features(self) -> None:
        import shipyard.features as sf

        roles, names = self.roles, self.names
        with self.step("Define features") as facts:
            types = self._feature_types()
            entity = sf.Entity(roles.entity, join_keys=[roles.id_column])
            view = sf.FeatureView(
                names.view,
                entities=[entity],
                source=names.entity_table,
                timestamp=roles.time_column,
                features=[sf.Feature(name, types[name]) for name in roles.features],
            )
            service = sf.FeatureService(names.service, features=[view])
            with sf.FeatureStore.open(self.config) as store:
                applied = store.apply([entity, view, service], actor="shipyard-demo")
                materialized = store.materialize()
            service_ref = next(
                str(d.reference)
                for d in (*applied.created, *applied.unchanged)
                if d.kind == "service"
            )
            self.say(
                f"Entity [bold]{roles.entity}[/] (key {roles.id_column}); feature view "
                f"[bold]{names.view}[/] over {names.entity_table} ({len(roles.numeric)} numeric, "
                f"{len(roles.categorical)} categorical features); feature service "
                f"[bold]{service_ref}[/]."
            )
            self.say(
                f"Materialized {materialized.rows:,} latest values to the online store "
                f"({materialized.online_store}) for serving."
            )
            facts["service"] = service_ref

    def _entity_rows(self, frame: pd.DataFrame, label_ts: Any) -> Any:
        import pandas as pd
        import pyarrow as pa

        roles = self.roles
        rows = pd.DataFrame(
            {
                roles.id_column: frame[roles.id_column].astype("int64").to_numpy(),
                "label_ts": label_ts,
                roles.target: (frame[roles.target].astype(str) == roles.positive)
                .astype("int64")
                .to_numpy(),
            }
        )
        table = pa.Table.from_pandas(rows, preserve_index=False)
        return table.set_column(1, "label_ts", table.column(1).cast(pa.timestamp("us", "UTC")))

    def training_sets(self) -> None:
        import numpy as np

        import shipyard.features as sf

        roles, names = self.roles, self.names
        with self.step("Build a point-in-time training set") as facts:
            broken = {c.row_id for c in self.data.corruptions}
            labelled = self.data.history[~self.data.history[roles.id_column].isin(broken)]
            # The label is known 14 days after the customer's event: features as of then.
            label_ts = [t + timedelta(days=14) for t in labelled[roles.time_column]]
            rows = self._entity_rows(labelled, label_ts)
            holdout_mask = np.asarray(rows.column(roles.id_column)) % 4 == 0
            with sf.FeatureStore.open(self.config) as store:
                train = store.training_set(
                    rows.filter(~holdout_mask),
                    self.log.facts["service"],
                    timestamp="label_ts",
                    save_as=names.train,
                    description="point-in-time training rows",
                )
                holdout = store.training_set(
                    rows.filter(holdout_mask),
                    self.log.facts["service"],
                    timestamp="label_ts",
                    save_as=names.holdout,
                    description="point-in-time holdout rows",
                )
            if train.version is None or holdout.version is None:
                raise IntegrityError("The feature store saved no training set version.")
            positives = int(rows.column(2).to_numpy().sum())
            self.say(
                f"Labels: {roles.target} = {roles.positive!r} -> 1 ({positives:,} "
                f"of {rows.num_rows:,}), known 14 days after each event; features joined as of "
                "that moment (point in time, no leakage)."
            )
            self.say(
                f"Saved [bold]{train.version.reference}[/] ({train.table.num_rows:,} rows) and "
                f"[bold]{holdout.version.reference}[/] ({holdout.table.num_rows:,} rows) as "
                "dataset versions."
            )
            facts["train_v1"] = str(train.version.reference)
            facts["holdout_v1"] = str(holdout.version.reference)
            facts["train_content"] = train.version.content_id

    # --- 3. training, evaluation, promotion ---------------------------------------------

    def train_candidates(self, kinds: list[str]) -> None:
        from shipyard.cli.demo_models import CANDIDATES, model_functions
        from shipyard.data.client import DatasetClient
        from shipyard.models.registry import ModelRegistry
        from shipyard.tracking.client import TrackingClient

        roles, names = self.roles, self.names
        with self.step("Train candidates, every run tracked") as facts:
            fit = model_functions(roles, kinds[0])
            with DatasetClient.open(self.config) as client:
                frame = client.read_table(self.log.facts["train_v1"]).to_pandas()
            candidates: list[dict[str, Any]] = []
            tracking = TrackingClient(self.config)
            try:
                with (
                    ModelRegistry.open(self.config) as registry,
                    self.bar("training", len(kinds)) as advance,
                ):
                    for kind in kinds:
                        run = tracking.create_run(names.model, name=f"candidate-{kind}")
                        started = time.perf_counter()
                        model = fit(frame, kind)
                        seconds = time.perf_counter() - started
                        tracking.log_params(
                            run.id,
                            {"algorithm": kind, "rows": len(frame), "label": roles.target},
                        )
                        tracking.log_input(run.id, names.train, self.log.facts["train_content"])
                        tracking.log_metrics(run.id, {"fit_seconds": seconds})
                        example = frame[list(roles.features)].head(5)
                        tracking.log_model(run.id, model, "model", input_example=example)
                        tracking.set_terminated(run.id, "finished")
                        tracking.flush()
                        version = registry.register(
                            names.model,
                            run_id=run.id,
                            training_data=self.log.facts["train_v1"],
                            feature_service=self.log.facts["service"],
                            description=f"candidate: {CANDIDATES[kind]}",
                            tags={"algorithm": kind},
                            actor="shipyard-demo",
                        )
                        candidates.append(
                            {"kind": kind, "run": run.id, "version": version.reference}
                        )
                        self.say(
                            f"run {run.id[:12]} [bold]{kind}[/] ({CANDIDATES[kind]}): "
                            f"fit in {seconds:.1f} s, registered as [bold]{version.reference}[/]"
                        )
                        advance()
            finally:
                tracking.close()
            facts["candidates"] = candidates

    def evaluate_candidates(self) -> None:
        from shipyard.evaluation.runner import evaluate
        from shipyard.models.registry import ModelRegistry

        roles = self.roles
        with self.step("Evaluate against the business targets") as facts:
            t = self.targets
            self.say(
                f"Targets: recall >= {t.min_recall:g} at precision >= {t.at_precision:g} for "
                f"{roles.target}={roles.positive!r}; ROC AUC >= {t.min_auc:g}; p99 latency "
                f"<= {t.p99_ms:g} ms; recall gap by {roles.fairness_by or '(no slice column)'} "
                f"<= {t.max_gap:g}."
            )
            gates = t.gates(roles.fairness_by, with_champion=False)
            results = []
            with (
                ModelRegistry.open(self.config) as registry,
                self.bar("evaluating", len(self.log.facts["candidates"])) as advance,
            ):
                for candidate in self.log.facts["candidates"]:
                    report = evaluate(
                        candidate["version"],
                        data=self.log.facts["holdout_v1"],
                        label=roles.target,
                        gates=gates,
                        slice_by=[roles.fairness_by] if roles.fairness_by else [],
                        registry=registry,
                    )
                    candidate.update(
                        passed=report.passed,
                        recorded=report.recorded,
                        roc_auc=report.metrics.get("roc_auc"),
                        gates=[(r.gate, r.status, r.figure, r.bound) for r in report.gate_results],
                    )
                    results.append(candidate)
                    advance()
            for candidate in results:
                verdict = "[green]passed[/]" if candidate["passed"] else "[red]failed[/]"
                figures = ", ".join(
                    f"{gate} {fmt(figure)} ({'ok' if status != 'failed' else 'FAIL'})"
                    for gate, status, figure, _ in candidate["gates"]
                )
                self.say(f"{candidate['version']} {verdict}: {figures}")
            self.say("Each evaluation is stored on its version: promotion checks it.")
            facts["evaluated"] = results

    def promote(self) -> None:
        from shipyard.models.registry import ModelRegistry

        names = self.names
        with self.step("Promote the best to champion") as facts:
            candidates = self.log.facts["evaluated"]
            passing = [c for c in candidates if c["passed"]]
            pool = passing or candidates
            best = max(pool, key=lambda c: c["roc_auc"] if c["roc_auc"] is not None else -1.0)
            with ModelRegistry.open(self.config) as registry:
                if passing:
                    move = registry.promote(
                        best["version"],
                        "champion",
                        reason="demo: best ROC AUC among candidates that met every target",
                        actor="shipyard-demo",
                    )
                    self.say(
                        f"[bold]{best['version']}[/] -> {names.model}@champion (every gate "
                        "passed; the registry checked the stored evaluation)."
                    )
                else:
                    move = registry.promote(
                        best["version"],
                        "champion",
                        reason="demo: no candidate met every target",
                        override_reason="the demo goes on with the best candidate; a team "
                        "would stop here and revise the model or the targets",
                        actor="shipyard-demo",
                    )
                    self.say(
                        f"[yellow]No candidate met every target.[/] The demo promotes the best, "
                        f"{best['version']}, as an audited override (a team would stop here)."
                    )
            from shipyard.cli.demo_models import pipeline_source

            source = pipeline_source(
                self.roles, model=names.model, train=names.train, kind=best["kind"]
            )
            (self.config.project_dir / "pipelines.py").write_text(source, encoding="utf-8")
            self.say(
                f"pipelines.py: pipeline train_{names.model} retrains {best['kind']} on the "
                f"newest {names.train} (the code that trained the candidates)."
            )
            facts["champion_v1"] = best["version"]
            facts["champion_override"] = bool(move.override)
            facts["champion_kind"] = best["kind"]


def concat_tables(old: Any, fresh: Any) -> Any:
    import pyarrow as pa

    return pa.concat_tables([old, fresh.select(old.column_names).cast(old.schema)])


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
