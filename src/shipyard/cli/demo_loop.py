"""The demo's second half: the champion served over HTTP, real traffic and its
prediction log, a shifted batch, the monitor's alert, new data, and the closed-loop
policy's episode (retrain, gates, promote or reject), then serving following the
registry without a restart."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shipyard.cli.demo_story import Names, Story, StoryLog, Targets, concat_tables, fmt
from shipyard.core.errors import IntegrityError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from shipyard.cli.demo_data import Prepared
    from shipyard.core.config import Config

__all__ = ["LoopStory", "run_story"]


class LoopStory(Story):
    """The story with its serving and closed-loop steps."""

    # --- 4. serving, drift, the loop ----------------------------------------------------

    def serve_and_loop(self) -> None:
        from shipyard.cli.demo_serving import running_service

        with running_service(self.config, [f"{self.names.model}@champion"]) as (service, port):
            self._port = port
            self._service = service
            self.serve_traffic()
            self.shifted_batch()
            self.monitor()
            self.new_data()
            self.closed_loop()
            self.after_loop()
            if service.writer is not None:
                service.writer.flush()

    def _records(self, frame: pd.DataFrame, prefix: str, *, full: bool) -> list[Any]:
        roles = self.roles
        out: list[tuple[str, dict[str, Any]]] = []
        for row in frame.to_dict("records"):
            key = int(row[roles.id_column])
            record: dict[str, Any] = {roles.id_column: key}
            if full:
                for name in roles.features:
                    value = row[name]
                    if value is None or (isinstance(value, float) and value != value):
                        continue
                    record[name] = value.item() if hasattr(value, "item") else value
            out.append((f"{prefix}-{key}", record))
        return out

    @staticmethod
    def _grouped(records: list[Any], size: int, prefix: str) -> list[Any]:
        """Records sent ``size`` to a request (the service gives each its own id)."""
        return [
            (f"{prefix}-{start // size}", [record for _, record in records[start : start + size]])
            for start in range(0, len(records), size)
        ]

    def _send(self, records: list[Any], description: str) -> Any:
        from shipyard.cli.demo_serving import send_concurrently

        with self.bar(description, len(records)) as advance:
            return send_concurrently(self._port, self.names.model, records, progress=advance)

    def _labels(self, traffic: Any, frame: pd.DataFrame) -> int:
        """The true outcome of each answered record arrives, by its request id."""
        from shipyard.monitoring.labels import store_labels
        from shipyard.store.stores import open_stores

        roles = self.roles
        truth = {
            int(row[roles.id_column]): int(str(row[roles.target]) == roles.positive)
            for row in frame[[roles.id_column, roles.target]].to_dict("records")
        }
        rows = [
            (index, request_id, truth[int(record[roles.id_column])])
            for index, (request_id, record) in enumerate(traffic.answered, 1)
        ]
        with open_stores(self.config) as stores:
            report = store_labels(stores.metadata, rows, source="shipyard demo")
        return report.stored

    def serve_traffic(self) -> None:
        roles = self.roles
        with self.step("Serve the champion over HTTP") as facts:
            self.say(
                f"uvicorn serves {self.names.model}@champion on http://127.0.0.1:{self._port} "
                "(POST /v1/models/NAME/predict; /openapi.json, /metrics)."
            )
            broken = {c.row_id for c in self.data.corruptions}
            known = self.data.history[~self.data.history[roles.id_column].isin(broken)]
            sample = known.sample(n=min(self.traffic, len(known)), random_state=1)
            records = self._records(sample, "known", full=False)
            traffic = self._send(records, f"known {self.plural}")
            if self._service.writer is not None:
                self._service.writer.flush()
            stored = self._labels(traffic, sample)
            self.say(
                f"{traffic.ok:,} requests from known {self.plural} carrying only "
                f"{{{roles.id_column!r}: ...}}: features looked up online in-process; "
                f"p50 {fmt(traffic.percentile(50))} ms, p99 {fmt(traffic.percentile(99))} ms "
                f"(client side); {traffic.positives} predicted {roles.positive!r}."
            )
            if traffic.errors:
                self.say(f"[red]errors[/] {traffic.errors}: {traffic.first_error}")
            self.say(f"Every prediction logged; {stored:,} labels arrived for them later.")
            from shipyard.monitoring.monitor import run_check

            check = run_check(self.config, self.names.model, window=traffic.records, actor="demo")
            self.say(
                f"Monitor check {check.id} on these {check.rows:,} records: "
                + ("[red]ALERT[/]" if check.alert else "[green]no alert[/]")
                + (
                    f" (drifted: {', '.join(check.drifted_columns)})"
                    if check.drifted_columns
                    else ""
                )
            )
            facts["baseline"] = {
                "sent": traffic.sent,
                "ok": traffic.ok,
                "records": traffic.records,
                "errors": traffic.errors,
                "p99_ms": traffic.percentile(99),
                "check": check.id,
                "alert": check.alert,
            }

    def shifted_batch(self) -> None:
        with self.step(f"A shifted batch of new {self.plural} arrives") as facts:
            shifts = "; ".join(f"{k} {v}" for k, v in self.data.shifts.items())
            self.say(
                f"{len(self.data.batch):,} new {self.plural}, their real rows with drift "
                f"planted in real columns: {shifts}."
            )
            records = self._grouped(self._records(self.data.batch, "new", full=True), 10, "new")
            traffic = self._send(records, f"new {self.plural}")
            if self._service.writer is not None:
                self._service.writer.flush()
            self.say(
                f"{traffic.ok:,} requests of 10 full records (new {self.plural} are not in the "
                f"online store yet): {traffic.records:,} scored, {traffic.positives:,} predicted "
                f"{self.roles.positive!r} ({traffic.positives / max(1, traffic.records):.0%})."
            )
            if traffic.errors:
                self.say(f"[red]errors[/] {traffic.errors}: {traffic.first_error}")
            facts["batch"] = {
                "sent": traffic.sent,
                "ok": traffic.ok,
                "records": traffic.records,
                "errors": traffic.errors,
            }
            facts["shifted"] = list(self.data.shifts)
            self._batch = traffic

    def monitor(self) -> None:
        from shipyard.monitoring.monitor import run_check

        with self.step("The monitor alerts") as facts:
            check = run_check(
                self.config, self.names.model, window=self._batch.records, actor="demo"
            )
            drifted = ", ".join(check.drifted_columns) or "none"
            self.say(
                f"Check {check.id} of {check.rows:,} records against the training data: "
                + ("[red bold]ALERT[/]" if check.alert else "no alert")
                + f" ({', '.join(check.alert_kinds) or 'no breach'}); drifted: {drifted}."
            )
            self.say(
                f"{len(check.sent)} alert(s) sent through the log channel (above); "
                "`shipyard monitor history` lists them."
            )
            facts["drift_check"] = check.id
            facts["alert"] = check.alert
            facts["alert_kinds"] = list(check.alert_kinds)
            facts["drifted"] = list(check.drifted_columns)
            facts["alerts_sent"] = [a.id for a in check.sent]
            self._drift_check = check

    def new_data(self) -> None:
        import shipyard.features as sf

        roles, names = self.roles, self.names
        with self.step("New data: labels arrive, a new version, a new training set") as facts:
            stored = self._labels(self._batch, self.data.batch)
            self.say(f"{stored:,} labels of the new {self.plural} arrive (by request id).")
            import pandas as pd

            both = pd.concat([self.data.history, self.data.batch], ignore_index=True)
            result = self._ingest(both, self.table_file)
            self.say(
                f"The source grew: [bold]{result.version.reference}[/] "
                f"({result.report.rows_passed:,} rows; {result.report.rows_quarantined} "
                "quarantined again)."
            )
            batch = self.data.batch
            when = [self.now + timedelta(minutes=5)] * len(batch)
            rows = self._entity_rows(batch, when)
            import numpy as np

            to_train = np.asarray(rows.column(roles.id_column)) % 2 == 0
            with sf.FeatureStore.open(self.config) as store:
                store.materialize()
                old = store.datasets.read_table(self.log.facts["train_v1"])
                fresh = store.training_set(
                    rows.filter(to_train), self.log.facts["service"], timestamp="label_ts"
                ).table
                train = store.datasets.ingest(
                    names.train, concat_tables(old, fresh), description="training rows + new batch"
                ).version
                holdout = store.training_set(
                    rows.filter(~to_train),
                    self.log.facts["service"],
                    timestamp="label_ts",
                    save_as=names.holdout,
                    description="holdout of the new batch",
                ).version
            if holdout is None:
                raise IntegrityError("The feature store saved no holdout version.")
            self.say(
                f"[bold]{train.reference}[/] = {names.train} v1 + {fresh.num_rows:,} new "
                f"{self.plural}; [bold]{holdout.reference}[/] holds the other "
                f"{int((~to_train).sum()):,} (the world as it is now)."
            )
            facts["table_v2"] = str(result.version.reference)
            facts["train_v2"] = str(train.reference)
            facts["holdout_v2"] = str(holdout.reference)

    def closed_loop(self) -> None:
        from shipyard.pipelines.closed_loop import ClosedLoop, Policy

        names = self.names
        with self.step("The closed loop: retrain, gates, decide") as facts:
            policy = Policy(
                model=names.model,
                pipeline=f"train_{names.model}",
                evaluation_data=names.holdout,
                label=self.roles.target,
                on=["drift", "performance"],
                gates=self.targets.gates(self.roles.fairness_by, with_champion=True),
                window=self._batch.records,
            )
            self.say(
                f"Policy {names.model}: on drift or performance alerts, run pipeline "
                f"train_{names.model} (pipelines.py) on the newest {names.train}, evaluate on "
                f"the newest {names.holdout} with the same targets plus 'no worse than the "
                "champion', promote automatically."
            )
            with (
                ClosedLoop(self.config, [policy], log=lambda m: None) as loop,
                self.bar("check, retrain, evaluate", None),
            ):
                run = loop.check_and_start(policy)
            if run is None:
                self.say("[yellow]The policy's check raised no alert it listens to.[/]")
                facts["loop"] = None
                return
            evaluated = next((e for e in run.events if e["step"] == "evaluated"), None)
            gates = (evaluated or {}).get("figures", {}).get("gates", [])
            for gate in gates:
                mark = "FAIL" if gate["status"] == "failed" else gate["status"]
                self.say(f"  {gate['gate']}: {fmt(gate['figure'])} vs {gate['bound']} ({mark})")
            challenger = f"{names.model}@v{run.challenger_version}"
            if run.outcome == "promoted":
                self.say(f"Challenger [bold]{challenger}[/] passed every gate: [green]promoted[/].")
            else:
                self.say(
                    f"Challenger [bold]{challenger}[/]: [red]{run.outcome}[/] (the champion stays)."
                )
            facts["loop"] = {
                "episode": run.id,
                "outcome": run.outcome,
                "challenger": challenger,
                "gates": gates,
                "trigger": run.trigger,
                "steps": [e["step"] for e in run.events],
            }

    def after_loop(self) -> None:
        from shipyard.models.registry import ModelRegistry

        with self.step("Serving follows the registry") as facts:
            with ModelRegistry.open(self.config) as registry:
                champion = registry.get(f"{self.names.model}@champion")
            time.sleep(1.0)  # the service polls the registry every 0.3 s
            sample = self.data.batch.head(min(50, len(self.data.batch)))
            records = self._records(sample, "after", full=True)
            traffic = self._send(records, "after the loop")
            served = ", ".join(f"v{v}: {n}" for v, n in sorted(traffic.versions.items()))
            self.say(
                f"{self.names.model}@champion is {champion.reference}; {traffic.records} more "
                f"records were answered by {served} (no restart)."
            )
            facts["final_champion"] = champion.reference
            facts["served_after"] = dict(traffic.versions)


def run_story(
    config: Config,
    prepared: Prepared,
    names: Names,
    targets: Targets,
    out: Console,
    *,
    traffic: int = 200,
    kinds: tuple[str, ...] = ("logistic", "gbm", "forest"),
) -> StoryLog:
    """Run every step on the project of ``config``; return what was shown."""
    story = LoopStory(config, prepared, names, targets, out, traffic=traffic)
    story.ingest()
    story.define_features()
    story.training_sets()
    story.train_candidates(list(kinds))
    story.evaluate_candidates()
    story.promote()
    story.serve_and_loop()
    return story.log
