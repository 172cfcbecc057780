"""The explicit tracking API: every call names its run. ``fluent`` builds on it.

>>> with TrackingClient() as client:
...     run = client.create_run("churn", name="gbm-baseline")
...     client.log_params(run.id, {"learning_rate": 0.1, "max_depth": 6})
...     for epoch in range(10):
...         client.log_metric(run.id, "loss", 1 / (epoch + 1), step=epoch)
...     client.log_artifact(run.id, "reports/roc.png", "plots")
...     client.set_terminated(run.id)

Every call is checked at once (bad input, an unknown, ended or deleted run or
experiment, a param logged again with another value) and raises then; what it writes
is queued and written in the background, batched: run creations, metrics, params, tags,
artifact and input records and run ends go to the store in one transaction per flush
interval (see ``shipyard.tracking.writer``: what is buffered, when it is flushed, what
a crash can lose). ``flush()`` returns once everything is committed, so other processes
see it. Reads (``get_run``, ``get_metric_history``, ``search_runs``,
``list_artifacts``) flush this client's pending writes first, so a client always reads
its own writes. Experiments are written synchronously (and cached by the client, so
naming one in ``create_run`` costs no round trip); artifact bytes go to the artifact
store before the call returns.

What is checked later, when the writes are committed, is only what another client
changed meanwhile: a param another process stored first with another value, a run it
ended or deleted, an experiment it deleted before this client's new run in it was
written. Those errors are raised by this client's next call.

The class is assembled from the modules that hold its parts: ``client_state``
(``ClientState``: the stores, the writer, the states of the runs written to, flushing and
closing), ``client_logging`` (``RunLogging``: metrics, params, tags, inputs, artifacts)
and this module (experiments, runs, reads and search).

Bad input raises ``TrackingInputError`` (a ``ValueError``) naming the field and the fix;
an unknown run raises ``NotFoundError``; writing to an ended or deleted run raises
``RunStateError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from shipyard.core.config import Config
from shipyard.store.stores import Stores
from shipyard.tracking import capture, experiments, lifecycle
from shipyard.tracking.client_logging import RunLogging
from shipyard.tracking.records import Experiment, Metric, Run, RunPage
from shipyard.tracking.runs import (
    MAX_ERROR_LENGTH,
    RunStart,
    RunState,
    check_status,
    end_run,
    prepare_run,
    reopen_run,
)
from shipyard.tracking.validation import validate_name
from shipyard.tracking.writer import END, FLUSH_INTERVAL, RUN

__all__ = ["TrackingClient"]


class TrackingClient(RunLogging):
    """Experiments and runs of one project's stores.

    ``config`` defaults to the project found from the working directory
    (``load_config()``); pass ``stores`` to use stores you opened (the client then does
    not close them). Use it as a context manager or call ``close()``: closing flushes.
    Opening a client also fails runs left ``running`` by a process that died (no
    heartbeat for ``stale_after_seconds``; ``None`` skips that check).

    Closing does not end runs: a run created here is yours to end (``set_terminated``),
    and another client or process may go on logging to it. One left ``running`` when
    every process writing to it has exited is failed as stale once its heartbeat is
    older than ``stale_after_seconds`` (the fluent API ends its runs at exit).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        stores: Stores | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        stale_after_seconds: float | None = lifecycle.DEFAULT_STALE_AFTER_SECONDS,
    ) -> None:
        super().__init__(config, stores=stores, flush_interval=flush_interval)
        if stale_after_seconds is not None:
            try:
                self.mark_stale_runs(stale_after_seconds)
            except BaseException:
                self.close()
                raise

    # --- Experiments -----------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> Experiment:
        """Create an experiment; ``AlreadyExistsError`` if the name is taken.

        >>> client.create_experiment("churn", "monthly churn", tags={"team": "growth"}).name
        'churn'
        """
        with self._metadata.transaction() as conn:
            experiment = experiments.create_experiment(
                conn, name, description=description, tags=tags
            )
            self._metadata.record_event(
                conn, self._user, "experiment.create", "experiment", experiment.id, {"name": name}
            )
        self._remember_experiment(experiment)
        return experiment

    def get_experiment(self, id_or_name: str) -> Experiment:
        """The experiment with this id, name or id prefix (deleted ones too); ``NotFoundError``."""
        from shipyard.tracking import queries

        with self._metadata.connect() as conn:
            return queries.get_experiment(conn, id_or_name)

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The active experiment called ``name``, created if it does not exist."""
        known = self._experiments.get(name) if name.__class__ is str else None
        if known is not None and known.name == name:
            return known
        with self._metadata.transaction() as conn:
            experiment = experiments.active_experiment(conn, name)
        self._remember_experiment(experiment)
        return experiment

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Experiments, oldest first."""
        with self._metadata.connect() as conn:
            return experiments.list_experiments(conn, include_deleted=include_deleted)

    def delete_experiment(self, id_or_name: str) -> None:
        """Delete an experiment and its runs (restorable until purged)."""
        self.flush()
        with self._metadata.transaction() as conn:
            experiment = experiments.get_experiment(conn, id_or_name)
            lifecycle.delete_experiment(conn, experiment, actor=self._user, store=self._metadata)
        self._forget_experiment(experiment.id)
        self._experiments.clear()

    def restore_experiment(self, id_or_name: str) -> None:
        """Restore a deleted experiment and the runs deleted with it."""
        self.flush()
        with self._metadata.transaction() as conn:
            experiment = experiments.get_experiment(conn, id_or_name)
            lifecycle.restore_experiment(conn, experiment, actor=self._user, store=self._metadata)
        self._forget_experiment(experiment.id)
        self._experiments.clear()

    # --- Runs ------------------------------------------------------------------------

    def create_run(
        self,
        experiment: str | None = None,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        tags: Mapping[str, object] | None = None,
        capture_code: bool = True,
    ) -> Run:
        """Start a run (status ``running``) in ``experiment`` (id or name, created if new).

        ``experiment`` defaults to the parent's experiment for a nested run, else
        ``Default``. The run records the git commit, dirtiness and diff of the entry
        point's repository (``capture_code=False`` skips git) and the Python environment.
        The run is checked at once and written with the next flush (with its values):
        ``flush()`` to make it visible to other processes before then.

        >>> run = client.create_run("churn", name="gbm", tags={"stage": "dev"})
        >>> child = client.create_run(parent_id=run.id, name="fold-1")
        """
        self._check_usable()
        checked_tags = experiments.validate_tags(tags)
        if name is not None:
            validate_name(name, "run")
        code = capture.capture_code() if capture_code else None
        environment = capture.capture_environment()
        target = self._experiment_for_run(experiment, parent_id)
        diff_blob = self._stores.artifacts.put_bytes(code.diff) if code and code.diff else None
        start = RunStart(
            experiment=target,
            user=self._user,
            name=name,
            parent_id=parent_id,
            tags=checked_tags,
            source=capture.entry_point(),
            code=code,
            diff_blob=diff_blob,
            environment=environment,
            store_environment=environment.id not in self._environments_stored,
        )
        run, queued = prepare_run(start)
        self._writer.raise_error()
        self._runs.put(run.id, RunState(target.id, writable=True))
        self._writer.watch(run.id)
        self._writer.put((RUN, run.id, queued))
        self._environments_stored.add(environment.id)
        return run

    def resume_run(self, run_id: str) -> Run:
        """Continue logging to a run: a finished, failed or killed one runs again."""
        self._check_usable()
        self.flush()
        with self._metadata.transaction() as conn:
            state = reopen_run(conn, run_id)
        self._runs.put(run_id, state)
        self._writer.watch(run_id)
        return self.get_run(run_id)

    def set_terminated(
        self, run_id: str, status: str = "finished", error: str | None = None
    ) -> None:
        """End a run: ``finished``, ``failed`` (say why in ``error``) or ``killed``.

        A run this client writes to is ended with the next flush, after everything
        logged to it before (its values, records and the end land in one transaction);
        nothing more can be logged to it meanwhile. A write error met earlier is raised
        once the end is queued. Any other run is ended at once, after a flush.
        """
        if error is not None and not isinstance(error, str):
            error = repr(error)
        check_status(run_id, status)
        state = self._runs.get(run_id)
        if state is not None and state.writable and not self._closed:
            with self._runs.lock:
                state.writable = False
            ended_at = datetime.now(UTC)
            self._writer.put(
                (END, run_id, status, error[:MAX_ERROR_LENGTH] if error else None, ended_at)
            )
            self._writer.raise_error()
            return
        pending: BaseException | None = None
        try:
            self._writer.flush()
        except Exception as exc:  # noqa: BLE001 - end the run anyway, raise afterwards
            pending = exc
        with self._metadata.transaction() as conn:
            experiment_id = end_run(conn, run_id, status, error)
        self._writer.unwatch(run_id)
        self._runs.put(run_id, RunState(experiment_id, writable=False))
        if pending is not None:
            raise pending

    def get_run(self, run_id: str) -> Run:
        """The run with its params, tags, latest metrics and inputs; ``NotFoundError``."""
        from shipyard.tracking import queries

        self.flush()
        with self._metadata.connect() as conn:
            return queries.load_run(conn, run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged value of one metric of a run, by step then timestamp."""
        from shipyard.tracking import queries

        self.flush()
        with self._metadata.connect() as conn:
            return queries.metric_history(conn, run_id, key)

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
        count_total: bool = False,
    ) -> RunPage:
        """Runs matching a filter (``"metrics.auc > 0.8 and params.depth = '6'"``), paged.

        ``experiment_ids`` takes ids or names; ``None`` searches every experiment. See
        ``shipyard.tracking.search`` for the filter language.

        >>> page = client.search_runs(["churn"], "metrics.auc > 0.8", ["metrics.auc DESC"])
        """
        from shipyard.tracking import queries

        self.flush()
        with self._metadata.connect() as conn:
            ids = (
                None
                if experiment_ids is None
                else [queries.get_experiment(conn, ref).id for ref in experiment_ids]
            )
            return queries.search_runs(
                conn,
                experiment_ids=ids,
                filter_string=filter_string,
                order_by=order_by,
                max_results=max_results,
                page_token=page_token,
                include_deleted=include_deleted,
                count_total=count_total,
            )

    def delete_run(self, run_id: str) -> None:
        """Delete a run and the runs nested in it (restorable until purged)."""
        self.flush()
        with self._metadata.transaction() as conn:
            deleted = lifecycle.delete_run(conn, run_id, actor=self._user, store=self._metadata)
        self._forget(deleted)

    def restore_run(self, run_id: str) -> None:
        """Restore a deleted run and the nested runs deleted with it."""
        self.flush()
        with self._metadata.transaction() as conn:
            restored = lifecycle.restore_run(conn, run_id, actor=self._user, store=self._metadata)
        self._forget(restored)

    def purge(self, older_than_seconds: float = 0) -> int:
        """Permanently remove runs and experiments deleted at least that long ago.

        Returns how many records (runs + experiments) were removed. Their artifacts are
        freed by the next garbage collection (``shipyard store gc``).
        """
        self.flush()
        with self._metadata.transaction() as conn:
            removed_runs, removed_experiments = lifecycle.purge(
                conn, older_than_seconds=older_than_seconds, actor=self._user, store=self._metadata
            )
        self._experiments.clear()
        return removed_runs + removed_experiments

    def mark_stale_runs(
        self, max_silence_seconds: float = lifecycle.DEFAULT_STALE_AFTER_SECONDS
    ) -> list[str]:
        """Fail running runs whose heartbeat stopped that long ago; return their ids.

        Runs this client is writing to are alive by definition and left alone.
        """
        with self._metadata.connect() as conn:  # a read first: opening a client stays cheap
            if not lifecycle.any_stale(conn, max_silence_seconds=max_silence_seconds):
                return []
        own = self._runs.writable_ids()
        with self._metadata.transaction() as conn:
            return lifecycle.mark_stale_runs(
                conn, max_silence_seconds=max_silence_seconds, exclude=own
            )
