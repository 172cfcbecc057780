"""The closed loop as one declarative policy: alert (or schedule) -> retrain -> gates ->
canary -> promote, reject or roll back; every step recorded.

::

    from shipyard.pipelines.closed_loop import Canary, Policy

    churn_policy = Policy(
        model="churn",
        pipeline="train_churn",             # returns the fitted model as an output
        on=["drift", "performance"],        # or a cron schedule: "0 3 * * 1"
        evaluation_data="churn_holdout",    # newest version at the time of the run
        label="churn",
        gates="config",                     # [gates.churn] in shipyard.toml, or Gate objects
        canary=Canary(share=0.1, min_requests=200, max_error_rate=0.01, max_p99_ms=50,
                      metric_vs_champion="roc_auc", max_metric_drop=0.02),
        promote="auto",
    )

A policy written at module level in the project's ``pipelines.py`` is run by
``shipyard scheduler``: every ``check_every`` it runs a monitoring check of the model
(``shipyard.monitoring.monitor``); an alert of a kind it listens to (``drift``: data,
dataset or prediction drift; ``performance``: realized performance below its bounds)
starts an *episode* (a ``loop_runs`` row):

1. ``triggered``: what started it (the alert, the schedule, a person);
2. ``trained``: the training pipeline runs (``run_pipeline``, on the newest dataset
   versions its ``dataset(...)`` inputs resolve to); its model output is registered as
   the challenger with the dataset versions the run read as its training data;
3. ``evaluated``: ``shipyard.evaluation.evaluate`` runs the gates against the champion
   on ``evaluation_data``; a failed gate rejects the challenger;
4. ``canary`` (optional): ``registry.set_canary`` gives it ``share`` of the traffic; the
   episode waits (each scheduler tick calls :meth:`ClosedLoop.advance`) until the canary
   has ``min_requests`` logged records, then judges them: error rate (records without a
   finite score), p99 latency and, where labels arrived, the metric against the
   champion's over the same period. A failed criterion, or ``max_wait`` passing first,
   clears the canary at once (rolled back);
5. ``promoted`` (``registry.promote``, which checks the stored evaluation again) or
   ``rejected``/``rolled_back``; with ``promote="manual"`` the episode ends ``ready``
   and a person promotes.

Every step is a ``loop_events`` row with who, when, what and the figures;
``shipyard monitor history`` lists them beside checks and alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.pipelines.canary import Canary, judge_canary

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry
    from shipyard.pipelines.cron import CronExpression

__all__ = [
    "ALERT_TRIGGERS",
    "Canary",
    "ClosedLoop",
    "LoopRun",
    "Policy",
    "loop_history",
    "project_policies",
]

ALERT_TRIGGERS: dict[str, tuple[str, ...]] = {
    "drift": ("data_drift", "dataset_drift", "prediction_drift"),
    "performance": ("performance",),
}
"""What each ``on=`` word listens to: the alert kinds of ``shipyard.monitoring.alerts``."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Policy:
    """One closed-loop policy (see the module doc). ``name`` defaults to the model's."""

    model: str
    pipeline: str
    evaluation_data: str
    label: str
    on: Sequence[str] | str = ("drift", "performance")
    gates: Sequence[Any] | Literal["config"] = "config"
    canary: Canary | None = None
    promote: Literal["auto", "manual"] = "auto"
    alias: str = "champion"
    params: Mapping[str, Any] = field(default_factory=dict)
    output: str | None = None
    name: str | None = None
    check_every: timedelta = timedelta(minutes=10)
    window: int | timedelta = 1000
    executor: str = "inprocess"
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        from shipyard.core.errors import ReferenceError_
        from shipyard.core.references import parse_reference, validate_name

        where = f"Policy({self.model!r})"
        for attribute in ("model", "pipeline", "evaluation_data", "label"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{where}: {attribute} must be a non-empty string, not {value!r}."
                )
        try:
            validate_name(self.model, what="model name")
            parse_reference(self.evaluation_data)
        except ReferenceError_ as exc:
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from exc
        if isinstance(self.on, str):
            from shipyard.pipelines.cron import parse_cron

            try:
                parse_cron(self.on)
            except ShipyardError as exc:
                raise ConfigError(
                    f"{where}: on={self.on!r} is neither a list of alert triggers nor a cron "
                    f"schedule: {exc}",
                    hint='Use on=["drift", "performance"] or on="0 3 * * *".',
                ) from exc
        else:
            words = list(self.on) if isinstance(self.on, list | tuple) else None
            if not words or any(word not in ALERT_TRIGGERS for word in words):
                raise ConfigError(
                    f"{where}: on={self.on!r}; expected a non-empty list of "
                    f"{' and '.join(ALERT_TRIGGERS)}, or a cron schedule string.",
                    hint='e.g. on=["drift"] or on="0 3 * * 1".',
                )
        if self.gates != "config":
            from shipyard.evaluation.gates import Gate

            if not isinstance(self.gates, list | tuple) or not all(
                isinstance(g, Gate) for g in self.gates
            ):
                raise ConfigError(
                    f'{where}: gates must be "config" or a list of gates '
                    "(shipyard.evaluation.metric(...), champion(...)...).",
                )
        if self.canary is not None and not isinstance(self.canary, Canary):
            raise ConfigError(f"{where}: canary must be a Canary(...) or None.")
        if self.promote not in ("auto", "manual"):
            raise ConfigError(f"{where}: promote is {self.promote!r}; use auto or manual.")
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"{where}: params must be a mapping of pipeline parameters.")
        if not isinstance(self.check_every, timedelta) or self.check_every <= timedelta(0):
            raise ConfigError(f"{where}: check_every must be a positive timedelta.")
        if isinstance(self.window, bool) or not (
            (isinstance(self.window, int) and self.window >= 1)
            or (isinstance(self.window, timedelta) and self.window > timedelta(0))
        ):
            raise ConfigError(f"{where}: window must be a record count >= 1 or a timedelta.")
        if self.executor not in ("inprocess", "process", "ray"):
            raise ConfigError(
                f"{where}: executor {self.executor!r}; use inprocess, process or ray."
            )

    @property
    def key(self) -> str:
        return self.name or self.model

    @property
    def schedule(self) -> CronExpression | None:
        if not isinstance(self.on, str):
            return None
        from shipyard.pipelines.cron import parse_cron

        return parse_cron(self.on)

    @property
    def alert_kinds(self) -> tuple[str, ...]:
        if isinstance(self.on, str):
            return ()
        return tuple(kind for word in self.on for kind in ALERT_TRIGGERS[word])


@dataclass(frozen=True)
class LoopRun:
    """One episode of a policy as stored, with its events (oldest first)."""

    id: int
    policy: str
    model: str
    trigger: str
    stage: str
    status: str
    champion_version: int | None
    challenger_version: int | None
    outcome: str | None
    detail: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    events: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "model": self.model,
            "trigger": self.trigger,
            "stage": self.stage,
            "status": self.status,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "outcome": self.outcome,
            "detail": dict(self.detail),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "events": [{**event, "at": event["at"].isoformat()} for event in self.events],
        }


class ClosedLoop:
    """Runs policies' episodes on one project's stores (the scheduler holds one)."""

    def __init__(
        self,
        config: Config,
        policies: Sequence[Policy] = (),
        *,
        clock: Clock = _utc_now,
        log: Callable[[str], None] | None = None,
        channels: Sequence[Any] | None = None,
    ) -> None:
        keys = [p.key for p in policies]
        for policy in policies:
            if not isinstance(policy, Policy):
                raise ConfigError(f"ClosedLoop takes Policy objects, not {type(policy).__name__}.")
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ConfigError(
                f"Two policies are named {repeated[0]!r}.", hint="Give each a distinct name=."
            )
        self.config = config
        self.policies = list(policies)
        self.clock = clock
        self.log = log or (lambda message: None)
        self.channels = channels
        self._registry: ModelRegistry | None = None
        now = clock()
        self._next_check = {p.key: now for p in self.policies}
        self._next_fire = {
            p.key: p.schedule.next_after(now) for p in self.policies if p.schedule is not None
        }

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            from shipyard.models.registry import ModelRegistry

            self._registry = ModelRegistry.open(self.config)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def __enter__(self) -> ClosedLoop:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- what the scheduler calls -------------------------------------------------------

    def tick(self) -> None:
        """Advance running episodes; run due checks and schedules; start episodes."""
        now = self.clock()
        for policy in self.policies:
            try:
                self._tick_policy(policy, now)
            except Exception as exc:  # noqa: BLE001 - one policy's failure must not stop others
                self.log(f"policy {policy.key}: {type(exc).__name__}: {exc}")

    def _tick_policy(self, policy: Policy, now: datetime) -> None:
        running = self._running(policy)
        if running is not None:
            self.advance(running.id)
            return
        if policy.schedule is not None:
            if now >= self._next_fire[policy.key]:
                fire_at = self._next_fire[policy.key]
                self._next_fire[policy.key] = policy.schedule.next_after(now)
                self.start(policy, f"schedule {policy.on} at {fire_at:%Y-%m-%d %H:%M}Z")
            return
        if now < self._next_check[policy.key]:
            return
        self._next_check[policy.key] = now + policy.check_every
        self.check_and_start(policy)

    def check_and_start(self, policy: Policy) -> LoopRun | None:
        """Run a monitoring check of the policy's model; start an episode on an alert of
        a kind the policy listens to. Returns the episode, or None."""
        from shipyard.monitoring.monitor import run_check

        check = run_check(
            self.registry,
            policy.model,
            window=policy.window,
            channels=self.channels,
            actor=f"policy:{policy.key}",
            allow_pickle=policy.allow_pickle,
        )
        kinds = [kind for kind in check.alert_kinds if kind in policy.alert_kinds]
        self.log(
            f"policy {policy.key}: check {check.id} of {policy.model}@v{check.version}: "
            + (f"alert ({', '.join(kinds)})" if kinds else "no alert it listens to")
        )
        if not kinds:
            return None
        subjects = sorted({f.subject for s, f in check.breaches if f.kind in kinds})
        return self.start(
            policy,
            f"check {check.id}: {', '.join(kinds)} ({', '.join(subjects[:6])})",
            detail={"check_id": check.id, "alert_kinds": kinds},
        )

    # --- an episode ---------------------------------------------------------------------

    def start(
        self, policy: Policy, trigger: str, *, detail: Mapping[str, Any] | None = None
    ) -> LoopRun:
        """Start an episode now: train, register, evaluate, then canary or decide."""
        from shipyard.pipelines import loop_store

        if policy not in self.policies:
            self.policies.append(policy)
            self._next_check.setdefault(policy.key, self.clock())
        running = self._running(policy)
        if running is not None:
            raise ConfigError(
                f"Policy {policy.key!r} already has episode {running.id} in stage "
                f"{running.stage!r}.",
                hint="Wait for it to end (each scheduler tick advances it).",
            )
        champion = self._champion(policy)
        run_id = loop_store.create_run(
            self.registry.stores.metadata,
            policy=policy.key,
            model=policy.model,
            trigger=trigger,
            champion=champion.number if champion else None,
            detail=dict(detail or {}),
            now=self.clock(),
        )
        self._event(run_id, "triggered", "ok", f"{policy.key}: {trigger}", detail or {})
        try:
            challenger = self._train(policy, run_id, champion)
            passed = self._evaluate(policy, run_id, challenger, champion)
            if not passed:
                return self._finish(run_id, "rejected", "rejected", "challenger failed its gates")
            if champion is not None and challenger.number == champion.number:
                return self._finish(
                    run_id, "rejected", "rejected", "the pipeline produced the champion's model"
                )
            if policy.canary is not None and champion is not None:
                return self._start_canary(policy, run_id, challenger)
            return self._decide(policy, run_id, challenger)
        except Exception as exc:
            self._event(run_id, "failed", "failed", f"{type(exc).__name__}: {exc}", {})
            self._clear_canary_quietly(policy, run_id)
            loop_store.update_run(
                self.registry.stores.metadata,
                run_id,
                self.clock(),
                stage="failed",
                status="failed",
                outcome="failed",
            )
            raise

    def advance(self, run_id: int) -> LoopRun:
        """Move a waiting episode on (judge its canary); a finished one is returned as is."""
        from shipyard.pipelines import loop_store

        run = loop_store.get_run(self.registry.stores.metadata, run_id)
        if run.status != "running" or run.stage != "canary":
            return run
        policy = self._policy(run.policy)
        if policy.canary is None or run.challenger_version is None:
            return self._finish(run_id, "failed", "failed", "the policy no longer has a canary")
        challenger = self.registry.get(f"{policy.model}@v{run.challenger_version}")
        started = datetime.fromisoformat(str(run.detail["canary_started"]))
        figures = judge_canary(
            self.registry, policy.canary, challenger, run.champion_version, started
        )
        if figures["requests"] < policy.canary.min_requests:
            if self.clock() - started < policy.canary.max_wait:
                loop_store.update_run(
                    self.registry.stores.metadata,
                    run_id,
                    self.clock(),
                    detail={**run.detail, "canary_requests": figures["requests"]},
                )
                return loop_store.get_run(self.registry.stores.metadata, run_id)
            figures["failed"] = [
                f"only {figures['requests']} of {policy.canary.min_requests} requests within "
                f"{policy.canary.max_wait}"
            ]
        failed = list(figures["failed"])
        if failed:
            self._clear_canary(policy, run_id, f"rolled back: {'; '.join(failed)}", figures)
            return self._finish(
                run_id, "rolled_back", "rolled_back", f"canary failed: {'; '.join(failed)}"
            )
        self._clear_canary(policy, run_id, "canary met its criteria", figures)
        self._event(run_id, "canary_judged", "ok", "canary met every criterion", figures)
        return self._decide(policy, run_id, challenger)

    # --- steps --------------------------------------------------------------------------

    def _train(self, policy: Policy, run_id: int, champion: ModelVersion | None) -> ModelVersion:
        from shipyard.pipelines.runner import run_pipeline

        result = run_pipeline(
            policy.pipeline, dict(policy.params), config=self.config, executor=policy.executor
        )
        datasets = _run_datasets(result.run)
        estimator, output = self._model_output(policy, result)
        challenger = self.registry.register(
            policy.model,
            model=estimator,
            training_data=datasets or None,
            # The challenger serves the same requests: it reads the same feature service.
            feature_service=champion.feature_service if champion else None,
            description=f"challenger trained by policy {policy.key} (episode {run_id})",
            tags={"shipyard.loop.episode": str(run_id), "shipyard.pipeline.run": result.run_id},
            allow_pickle=policy.allow_pickle,
            actor=f"policy:{policy.key}",
        )
        from shipyard.pipelines import loop_store

        loop_store.update_run(
            self.registry.stores.metadata,
            run_id,
            self.clock(),
            stage="trained",
            challenger=challenger.number,
        )
        self._event(
            run_id,
            "trained",
            "ok",
            f"pipeline {policy.pipeline} run {result.run_id[:12]} trained "
            f"{challenger.reference} on {', '.join(datasets) or 'no dataset version'}",
            {
                "pipeline_run": result.run_id,
                "output": output,
                "datasets": datasets,
                "challenger": challenger.reference,
            },
        )
        return challenger

    def _model_output(self, policy: Policy, result: Any) -> tuple[Any, str]:
        from shipyard.pipelines.cache import load_outputs
        from shipyard.pipelines.outputs import read_output

        stores = self.registry.stores
        with stores.metadata.connect() as conn:
            records = load_outputs(conn, list(result.outputs.values()))
        models = {
            name: records[oid]
            for name, oid in result.outputs.items()
            if oid in records and records[oid].kind == "model"
        }
        if policy.output is not None:
            if policy.output not in models:
                raise ConfigError(
                    f"Pipeline {policy.pipeline} returned no model output named "
                    f"{policy.output!r} (its model outputs: {sorted(models) or 'none'}).",
                    hint="Return the fitted model from the pipeline, e.g. {'model': train(...)}.",
                )
            name = policy.output
        elif len(models) == 1:
            name = next(iter(models))
        else:
            raise ConfigError(
                f"Pipeline {policy.pipeline} returned {len(models)} model outputs "
                f"({sorted(models) or 'none'}); the policy cannot tell the challenger.",
                hint="Return exactly one model, or name it with Policy(output=...).",
            )
        model = read_output(
            models[name],
            stores.artifacts,
            allow_pickle=policy.allow_pickle,
            reader=f"policy {policy.key}",
        )
        return model, name

    def _evaluate(
        self, policy: Policy, run_id: int, challenger: ModelVersion, champion: ModelVersion | None
    ) -> bool:
        from shipyard.evaluation.gate_config import gates_from_config
        from shipyard.evaluation.report import gate_result_dict
        from shipyard.evaluation.runner import evaluate
        from shipyard.pipelines import loop_store

        gates = (
            gates_from_config(self.config, policy.model)
            if policy.gates == "config"
            else policy.gates
        )
        report = evaluate(
            challenger.reference,
            data=policy.evaluation_data,
            label=policy.label,
            gates=list(gates),  # type: ignore[arg-type]
            registry=self.registry,
            allow_pickle=policy.allow_pickle,
        )
        figures = {
            "dataset": report.dataset,
            "rows": report.rows,
            "metrics": {k: v for k, v in report.metrics.items() if v is not None},
            "gates": [gate_result_dict(r) for r in report.gate_results],
            "champion": champion.reference if champion else None,
        }
        failed = [f"{r.gate} {r.figure} vs {r.bound}" for r in report.failed_gates]
        loop_store.update_run(
            self.registry.stores.metadata, run_id, self.clock(), stage="evaluated"
        )
        self._event(
            run_id,
            "evaluated",
            "ok" if report.passed else "failed",
            f"{challenger.reference} on {report.dataset}: "
            + ("every gate passed" if report.passed else f"failed {'; '.join(failed)}"),
            figures,
        )
        return report.passed

    def _start_canary(self, policy: Policy, run_id: int, challenger: ModelVersion) -> LoopRun:
        from shipyard.pipelines import loop_store

        canary = policy.canary
        if canary is None:
            raise ConfigError(f"Policy {policy.key!r} has no canary to start.")
        self.registry.set_canary(
            policy.model,
            policy.alias,
            version=challenger.number,
            share=canary.share,
            sticky_by=canary.sticky_by,
            actor=f"policy:{policy.key}",
        )
        started = self.clock()
        run = loop_store.get_run(self.registry.stores.metadata, run_id)
        loop_store.update_run(
            self.registry.stores.metadata,
            run_id,
            started,
            stage="canary",
            detail={**run.detail, "canary_started": started.isoformat()},
        )
        self._event(
            run_id,
            "canary_started",
            "ok",
            f"{challenger.reference} serves {canary.share:.0%} of {policy.model}@{policy.alias}; "
            f"needs {canary.min_requests} requests within {canary.max_wait}",
            {
                "share": canary.share,
                "min_requests": canary.min_requests,
                "max_error_rate": canary.max_error_rate,
                "max_p99_ms": canary.max_p99_ms,
                "metric_vs_champion": canary.metric_vs_champion,
                "max_metric_drop": canary.max_metric_drop,
            },
        )
        return loop_store.get_run(self.registry.stores.metadata, run_id)

    def _decide(self, policy: Policy, run_id: int, challenger: ModelVersion) -> LoopRun:
        if policy.promote == "manual":
            return self._finish(
                run_id,
                "ready",
                "ready",
                f"{challenger.reference} passed; promote it with `shipyard models promote "
                f"{challenger.reference} {policy.alias}`",
            )
        move = self.registry.promote(
            challenger.reference,
            policy.alias,
            reason=f"closed loop: policy {policy.key}, episode {run_id}",
            actor=f"policy:{policy.key}",
        )
        self._event(
            run_id,
            "promoted",
            "ok",
            f"{policy.model}@{policy.alias}: v{move.from_version} -> v{move.to_version}",
            {"from_version": move.from_version, "to_version": move.to_version},
        )
        return self._finish(run_id, "promoted", "promoted", f"{challenger.reference} promoted")

    def _clear_canary(
        self, policy: Policy, run_id: int, message: str, figures: Mapping[str, Any]
    ) -> None:
        self.registry.clear_canary(policy.model, policy.alias, actor=f"policy:{policy.key}")
        rolled = message.startswith("rolled back")
        self._event(
            run_id,
            "rolled_back" if rolled else "canary_cleared",
            "failed" if rolled else "ok",
            message,
            figures,
        )

    def _clear_canary_quietly(self, policy: Policy, run_id: int) -> None:
        try:
            config = self.registry.alias_config(policy.model, policy.alias)
            run = self._run(run_id)
            if config.canary is not None and config.canary.version == run.challenger_version:
                self._clear_canary(policy, run_id, "rolled back: the episode failed", {})
        except ShipyardError:
            pass

    def _finish(self, run_id: int, stage: str, outcome: str, message: str) -> LoopRun:
        from shipyard.pipelines import loop_store

        status = "failed" if outcome == "failed" else "done"
        self._event(
            run_id,
            stage,
            "failed" if outcome in ("rejected", "rolled_back", "failed") else "ok",
            message,
            {},
        )
        loop_store.update_run(
            self.registry.stores.metadata,
            run_id,
            self.clock(),
            stage=stage,
            status=status,
            outcome=outcome,
        )
        self.log(f"episode {run_id}: {outcome}: {message}")
        return self._run(run_id)

    # --- helpers ------------------------------------------------------------------------

    def _event(
        self, run_id: int, step: str, outcome: str, message: str, figures: Mapping[str, Any]
    ) -> None:
        from shipyard.pipelines import loop_store

        loop_store.add_event(
            self.registry.stores.metadata,
            run_id,
            step=step,
            outcome=outcome,
            message=message,
            figures=figures,
            actor="shipyard-loop",
            now=self.clock(),
        )

    def _run(self, run_id: int) -> LoopRun:
        from shipyard.pipelines import loop_store

        return loop_store.get_run(self.registry.stores.metadata, run_id)

    def _running(self, policy: Policy) -> LoopRun | None:
        from shipyard.pipelines import loop_store

        return loop_store.running_run(self.registry.stores.metadata, policy.key)

    def _policy(self, key: str) -> Policy:
        for policy in self.policies:
            if policy.key == key:
                return policy
        raise NotFoundError(
            f"No policy named {key!r} is loaded; its running episode cannot advance.",
            hint="Keep the policy in the project's pipelines.py.",
        )

    def _champion(self, policy: Policy) -> ModelVersion | None:
        if policy.model not in self.registry.list_models():
            raise NotFoundError(
                f"Policy {policy.key!r}: model {policy.model!r} is not registered.",
                hint="Register and promote a first version before a policy retrains it.",
            )
        try:
            return self.registry.get(f"{policy.model}@{policy.alias}")
        except NotFoundError:
            return None


def _run_datasets(run: Any) -> list[str]:
    found: list[str] = []
    for step in run.steps:
        parts = step.key_parts or {}
        for reference in (parts.get("datasets") or {}).values():
            if isinstance(reference, str) and reference not in found:
                found.append(reference)
    return found


def project_policies(project_dir: Any) -> list[Policy]:
    """The policies defined at module level in the project's ``pipelines.py``."""
    from pathlib import Path

    from shipyard.pipelines.registry import import_project_pipelines

    module = import_project_pipelines(Path(project_dir))
    if module is None:
        return []
    found = [value for value in vars(module).values() if isinstance(value, Policy)]
    return sorted(found, key=lambda p: p.key)


def loop_history(
    source: Config | ModelRegistry, *, model: str | None = None, limit: int = 50
) -> list[LoopRun]:
    """Episodes, newest first, each with its events."""
    from shipyard.models.registry import ModelRegistry
    from shipyard.pipelines import loop_store

    if isinstance(source, ModelRegistry):
        return loop_store.list_runs(source.stores.metadata, model=model, limit=limit)
    with ModelRegistry.open(source) as registry:
        return loop_store.list_runs(registry.stores.metadata, model=model, limit=limit)
