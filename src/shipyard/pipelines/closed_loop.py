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

A policy (``shipyard.pipelines.policy``: written at module level in the project's
``pipelines.py``, or a ``[policies.NAME]`` table of ``shipyard.toml``) is run by
``shipyard scheduler``: every ``check_every`` it runs a monitoring check of the model
(``shipyard.monitoring.monitor``, with the ``[alerts]`` rules and channels); an alert of
a kind it listens to (``drift``: data, dataset or prediction drift; ``performance``:
realized performance below its bounds) starts an *episode* (a ``loop_runs`` row):

1. ``triggered``: what started it (the alert, the schedule, a person);
2. ``trained``: the training pipeline runs (``run_pipeline``, on the newest dataset
   versions its ``dataset(...)`` inputs resolve to); its model output is registered as
   the challenger with the dataset versions the run read as its training data;
3. ``evaluated``: ``shipyard.evaluation.evaluate`` runs the gates against the champion
   on ``evaluation_data``; a failed gate rejects the challenger;
4. ``canary`` (optional): ``registry.set_canary`` gives it ``share`` of the traffic; the
   episode waits (each scheduler tick calls :meth:`ClosedLoop.advance`) until the canary
   has ``min_requests`` logged records, then judges them: error rate (failed calls over
   every request of the arm), p99 latency and, where labels arrived, the metric against
   the champion's over the same period. A failed criterion, or ``max_wait`` passing first,
   clears the canary at once (rolled back);
5. ``promoted`` (``registry.promote``, which checks the stored evaluation again) or
   ``rejected``/``rolled_back``; with ``promote="manual"`` the episode ends ``ready``
   and a person promotes.

Every step is a ``loop_events`` row with who, when, what and the figures;
``shipyard monitor history`` lists them beside checks and alerts.

In Python, :meth:`ClosedLoop.start` runs steps 1-4 at once. The scheduler's tick records
step 1 and runs steps 2-4 in a worker process (``shipyard.pipelines.loop_worker``) that
it polls, so a long training delays no check and no other schedule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.pipelines import loop_store
from shipyard.pipelines.canary import Canary, judge_canary
from shipyard.pipelines.loop_store import LoopRun, loop_history
from shipyard.pipelines.policy import ALERT_TRIGGERS, Policy, project_policies

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry
    from shipyard.monitoring.alert_rules import AlertRule
    from shipyard.monitoring.channels import Channel
    from shipyard.pipelines.loop_worker import EpisodeWorkers

__all__ = [
    "ALERT_TRIGGERS",
    "Canary",
    "ClosedLoop",
    "LoopRun",
    "Policy",
    "loop_history",
    "project_policies",
]

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ClosedLoop:
    """Runs policies' episodes on one project's stores (the scheduler holds one).

    ``rules`` and ``channels`` of the checks default to the config's ``[alerts]``;
    with ``workers`` (the scheduler's), :meth:`tick` runs each episode's steps in a
    worker process instead of in the tick.
    """

    def __init__(
        self,
        config: Config,
        policies: Sequence[Policy] = (),
        *,
        clock: Clock = _utc_now,
        log: Callable[[str], None] | None = None,
        rules: Sequence[AlertRule] | None = None,
        channels: Sequence[Channel] | None = None,
        workers: EpisodeWorkers | None = None,
    ) -> None:
        from shipyard.monitoring.alert_config import AlertConfig, alerts_from_config

        keys = [p.key for p in policies]
        for policy in policies:
            if not isinstance(policy, Policy):
                raise ConfigError(f"ClosedLoop takes Policy objects, not {type(policy).__name__}.")
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ConfigError(
                f"Two policies are named {repeated[0]!r}.", hint="Give each a distinct name=."
            )
        configured = (
            alerts_from_config(config) if rules is None or channels is None else AlertConfig()
        )
        self.config = config
        self.policies = list(policies)
        self.clock = clock
        self.log = log or (lambda message: None)
        self.rules = configured.rules if rules is None else list(rules)
        self.channels = configured.channels if channels is None else list(channels)
        self.workers = workers
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
        """Reap ended workers; advance canaries; run due checks and schedules; start
        episodes (in a worker when the loop has ``workers``)."""
        now = self.clock()
        if self.workers is not None:
            self.reap_workers(now)
        for policy in self.policies:
            try:
                self._tick_policy(policy, now)
            except Exception as exc:  # noqa: BLE001 - one policy's failure must not stop others
                self.log(f"policy {policy.key}: {type(exc).__name__}: {exc}")

    def _tick_policy(self, policy: Policy, now: datetime) -> None:
        if self.workers is not None and self.workers.busy(policy.key):
            self._skip_fire(policy, now)
            return  # its episode trains in a worker; reaping picks up how it ended
        running = self._running(policy)
        if running is not None:
            self._skip_fire(policy, now)
            if running.stage == "canary" or self.workers is None:
                self.advance(running.id)
            else:
                self._fail_orphan(policy, running, now)
            return
        if policy.schedule is not None:
            if now >= self._next_fire[policy.key]:
                fire_at = self._next_fire[policy.key]
                self._next_fire[policy.key] = policy.schedule.next_after(now)
                self._launch(policy, f"schedule {policy.on} at {fire_at:%Y-%m-%d %H:%M}Z", {}, now)
            return
        if now < self._next_check[policy.key]:
            return
        self._next_check[policy.key] = now + policy.check_every
        alert = self._check(policy)
        if alert is not None:
            self._launch(policy, *alert, now)

    def _skip_fire(self, policy: Policy, now: datetime) -> None:
        """A fire time that comes while the policy's episode runs is skipped, not queued."""
        if policy.schedule is not None and now >= self._next_fire[policy.key]:
            fire_at = self._next_fire[policy.key]
            self._next_fire[policy.key] = policy.schedule.next_after(now)
            self.log(f"policy {policy.key}: fire time {fire_at:%H:%M}Z skipped, its episode runs")

    def check_and_start(self, policy: Policy) -> LoopRun | None:
        """Run a monitoring check of the policy's model; start an episode on an alert of
        a kind the policy listens to (in this process). Returns the episode, or None."""
        alert = self._check(policy)
        return None if alert is None else self.start(policy, alert[0], detail=alert[1])

    def _check(self, policy: Policy) -> tuple[str, dict[str, Any]] | None:
        """The trigger and detail of an alert the policy listens to, or None."""
        from shipyard.monitoring.monitor import run_check

        check = run_check(
            self.registry,
            policy.model,
            window=policy.window,
            rules=self.rules,
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
        return (
            f"check {check.id}: {', '.join(kinds)} ({', '.join(subjects[:6])})",
            {"check_id": check.id, "alert_kinds": kinds},
        )

    def _launch(
        self, policy: Policy, trigger: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        """Start an episode: in a worker process with ``workers``, else right here."""
        if self.workers is None:
            self.start(policy, trigger, detail=detail)
            return
        metadata = self.registry.stores.metadata
        if not self.workers.claim(metadata, policy.key, now):
            self.log(f"policy {policy.key}: another scheduler runs its episode; not started")
            return
        try:
            run_id = self.begin(policy, trigger, detail=detail)
        except BaseException:
            self.workers.unclaim(metadata, policy.key, now)
            raise
        try:
            self.workers.launch(policy, run_id, now)
        except Exception as exc:
            self.workers.unclaim(metadata, policy.key, now, status="failed")
            self.fail(run_id, f"its worker did not start: {type(exc).__name__}: {exc}")
            raise

    def reap_workers(self, now: datetime | None = None) -> None:
        """Release ended workers' leases; fail an episode its worker left unfinished."""
        if self.workers is None:
            return
        now = now or self.clock()
        metadata = self.registry.stores.metadata
        self.workers.renew(metadata, now)
        for ended in self.workers.reap(metadata, now):
            run = self._run(ended.run_id)
            if run.status == "running" and run.stage != "canary":
                self.fail(
                    ended.run_id,
                    f"its worker exited with code {ended.code} before the episode ended; "
                    f"see {ended.log_path}",
                )
                run = self._run(ended.run_id)
            self.log(
                f"policy {ended.policy}: episode {ended.run_id} worker ended (code "
                f"{ended.code}): {run.outcome or run.stage}"
            )

    def _fail_orphan(self, policy: Policy, running: LoopRun, now: datetime) -> None:
        """A running episode before its canary with no worker of ours: if no scheduler
        holds the policy's lease, its worker is gone (the scheduler stopped): fail it."""
        assert self.workers is not None  # noqa: S101 - called only with workers
        metadata = self.registry.stores.metadata
        if not self.workers.claim(metadata, policy.key, now):
            return  # another scheduler's worker is on it
        try:
            self.fail(running.id, "its worker is gone (the scheduler stopped while it ran)")
        finally:
            self.workers.unclaim(metadata, policy.key, now, status="failed")

    # --- an episode ---------------------------------------------------------------------

    def start(
        self, policy: Policy, trigger: str, *, detail: Mapping[str, Any] | None = None
    ) -> LoopRun:
        """Start an episode now and run it here: train, register, evaluate, then canary
        or decide (:meth:`begin` then :meth:`run_episode`)."""
        return self.run_episode(policy, self.begin(policy, trigger, detail=detail))

    def begin(
        self, policy: Policy, trigger: str, *, detail: Mapping[str, Any] | None = None
    ) -> int:
        """Record a new episode of ``policy`` (``triggered``) and return its id."""
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
        return run_id

    def run_episode(self, policy: Policy, run_id: int) -> LoopRun:
        """Train, register, evaluate, then start the canary or decide (episode ``run_id``,
        recorded by :meth:`begin`). A failure marks the episode failed and is raised."""
        try:
            run = self._run(run_id)
            champion = (
                self.registry.get(f"{policy.model}@v{run.champion_version}")
                if run.champion_version is not None
                else None
            )
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
            self.fail(run_id, f"{type(exc).__name__}: {exc}")
            raise

    def fail(self, run_id: int, message: str) -> LoopRun:
        """Mark a running episode failed (its canary, if any, cleared)."""
        run = self._run(run_id)
        if run.status != "running":
            return run
        self._event(run_id, "failed", "failed", message, {})
        with contextlib.suppress(NotFoundError):  # a policy no longer loaded has no canary
            self._clear_canary_quietly(self._policy(run.policy), run_id)
        loop_store.update_run(
            self.registry.stores.metadata,
            run_id,
            self.clock(),
            stage="failed",
            status="failed",
            outcome="failed",
        )
        self.log(f"episode {run_id}: failed: {message}")
        return self._run(run_id)

    def advance(self, run_id: int) -> LoopRun:
        """Move a waiting episode on (judge its canary); a finished one is returned as is."""
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
        from shipyard.pipelines.loop_steps import train_challenger

        challenger, message, figures = train_challenger(
            self.config, self.registry, policy, run_id, champion
        )
        loop_store.update_run(
            self.registry.stores.metadata,
            run_id,
            self.clock(),
            stage="trained",
            challenger=challenger.number,
        )
        self._event(run_id, "trained", "ok", message, figures)
        return challenger

    def _evaluate(
        self, policy: Policy, run_id: int, challenger: ModelVersion, champion: ModelVersion | None
    ) -> bool:
        from shipyard.pipelines.loop_steps import evaluate_challenger

        passed, message, figures = evaluate_challenger(
            self.config, self.registry, policy, challenger, champion
        )
        loop_store.update_run(
            self.registry.stores.metadata, run_id, self.clock(), stage="evaluated"
        )
        self._event(run_id, "evaluated", "ok" if passed else "failed", message, figures)
        return passed

    def _start_canary(self, policy: Policy, run_id: int, challenger: ModelVersion) -> LoopRun:
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
        with contextlib.suppress(ShipyardError):  # failing the episode matters more
            config = self.registry.alias_config(policy.model, policy.alias)
            run = self._run(run_id)
            if config.canary is not None and config.canary.version == run.challenger_version:
                self._clear_canary(policy, run_id, "rolled back: the episode failed", {})

    def _finish(self, run_id: int, stage: str, outcome: str, message: str) -> LoopRun:
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
        return loop_store.get_run(self.registry.stores.metadata, run_id)

    def _running(self, policy: Policy) -> LoopRun | None:
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
