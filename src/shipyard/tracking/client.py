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

Bad input raises ``TrackingInputError`` (a ``ValueError``) naming the field and the fix;
an unknown run raises ``NotFoundError``; writing to an ended or deleted run raises
``RunStateError``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from shipyard.core.config import Config, load_config
from shipyard.core.errors import NotFoundError
from shipyard.store.stores import Stores, open_stores
from shipyard.tracking import artifacts as artifact_tree
from shipyard.tracking import capture, experiments, lifecycle
from shipyard.tracking.records import (
    ArtifactEntry,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunPage,
)
from shipyard.tracking.runs import (
    MAX_ERROR_LENGTH,
    RunStart,
    RunState,
    RunStates,
    check_input,
    check_status,
    check_writable,
    end_run,
    prepare_run,
    reopen_run,
)
from shipyard.tracking.validation import (
    MAX_STEP,
    VALID_KEYS,
    RunStateError,
    TrackingInputError,
    mapping_items,
    metric_step,
    metric_timestamp,
    metric_value,
    param_value,
    validate_key,
    validate_name,
)
from shipyard.tracking.writer import (
    ARTIFACTS,
    END,
    FLUSH_INTERVAL,
    INPUT,
    METRIC,
    PARAM,
    RUN,
    TAG,
    Writer,
)

if TYPE_CHECKING:
    from shipyard.formats import ModelInfo

__all__ = ["TrackingClient"]


class TrackingClient:
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
        self._owns_stores = stores is None
        self._stores = stores if stores is not None else open_stores(config or load_config())
        self._metadata = self._stores.metadata
        self._runs = RunStates(self._metadata)
        self._environments_stored: set[str] = set()
        self._experiments: dict[str, Experiment] = {}
        """Active experiments this client knows, by id and by name (see ``_experiment``)."""
        self._user = capture.current_user()
        self._closed = False
        self._writer = Writer(
            self._metadata,
            flush_interval=flush_interval,
            on_param_conflict=self._param_conflict,
            on_run_closed=self._run_closed,
            on_experiment_gone=self._experiment_gone,
        )
        if stale_after_seconds is not None:
            try:
                self.mark_stale_runs(stale_after_seconds)
            except BaseException:
                self.close()
                raise

    @property
    def stores(self) -> Stores:
        return self._stores

    @property
    def flush_interval(self) -> float:
        return self._writer.flush_interval

    def __repr__(self) -> str:
        return f"TrackingClient({self._metadata.display_uri!r})"

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

    # --- Logging ---------------------------------------------------------------------

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        step: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Log one value of a metric (buffered: costs microseconds).

        ``step`` defaults to 0, ``timestamp`` (seconds since the epoch) to now. NaN and
        infinities are stored as such.
        """
        writer = self._writer
        if writer._errors:
            writer.raise_error()
        state = self._runs.get(run_id)
        if state is None or not state.writable or self._closed:
            self._writable(run_id)
        if key.__class__ is not str or key not in VALID_KEYS:
            validate_key(key, "metric")
        if value.__class__ is not float:
            value = metric_value(value, key=key)
        if step is None:
            step = 0
        elif step.__class__ is not int or not 0 <= step <= MAX_STEP:
            step = metric_step(step, key=key)
        writer.put(
            (
                METRIC,
                run_id,
                key,
                value,
                step,
                time.time() if timestamp is None else metric_timestamp(timestamp, key=key),
            )
        )

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Log several metrics at one step and one timestamp."""
        self._writable(run_id)
        items = mapping_items(metrics, "metrics")
        checked_step = metric_step(step)
        now = time.time()
        batch = [
            (METRIC, run_id, validate_key(k, "metric"), metric_value(v, key=k), checked_step, now)
            for k, v in items
        ]
        self._writer.put_many(batch)

    def log_param(self, run_id: str, key: str, value: object) -> None:
        """Log a param (stringified). Logging it again with another value is an error."""
        self.log_params(run_id, {key: value})

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        """Log several params; all are checked before any is queued."""
        state = self._writable(run_id)
        checked = {
            validate_key(key, "param"): param_value(value, key=key)
            for key, value in mapping_items(params, "params")
        }
        new = self._runs.claim_params(run_id, state, checked)
        self._writer.put_many([(PARAM, run_id, key, value) for key, value in new.items()])

    def set_tag(self, run_id: str, key: str, value: object) -> None:
        """Set a tag (stringified); a tag can be changed, the last value wins."""
        self.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        """Set several tags."""
        self._writable(run_id)
        checked = experiments.validate_tags(dict(mapping_items(tags, "tags")))
        self._writer.put_many([(TAG, run_id, key, value) for key, value in checked.items()])

    def log_input(
        self, run_id: str, dataset: str, version_id: str, role: str = "train"
    ) -> DatasetInput:
        """Record that the run read a dataset version (``version_id``: its content id)."""
        self._writable(run_id)
        checked = check_input(dataset, version_id, role)
        self._writer.put((INPUT, run_id, checked.dataset, checked.version_id, checked.role))
        return checked

    # --- Artifacts -------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: Path | str, artifact_path: str | None = None
    ) -> list[ArtifactEntry]:
        """Log a file or a whole folder (streamed) into the folder ``artifact_path``.

        >>> client.log_artifact(run.id, "roc.png", "plots")[0].path
        'plots/roc.png'
        """
        return self._log_files(run_id, artifact_tree.local_files(local_path, artifact_path))

    def log_text(self, run_id: str, text: str, artifact_path: str) -> ArtifactEntry:
        """Log text as a UTF-8 file at ``artifact_path`` (e.g. ``notes/summary.md``)."""
        self._writable(run_id)
        entry = artifact_tree.upload_text(self._stores, text, artifact_path)
        self._record_artifacts(run_id, [entry])
        return entry

    def log_model(self, run_id: str, model: Any, name: str = "model", **kwargs: Any) -> ModelInfo:
        """Save ``model`` with ``shipyard.formats.save_model`` and log it under ``name/``.

        Keyword arguments go to ``save_model`` (``allow_pickle=True`` for formats that
        need pickle). Returns the ``ModelInfo`` that ``save_model`` returned.
        """
        self._writable(run_id)
        with artifact_tree.saved_model(model, name, kwargs) as (info, files):
            self._log_files(run_id, files, kind="model")
        return info

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactEntry]:
        """The run's artifact files under ``path`` (everything by default), sorted."""
        prefix = artifact_tree.folder_prefix(path)
        self.flush()
        with self._metadata.connect() as conn:
            lifecycle.run_row(conn, run_id)
            return artifact_tree.list_entries(conn, run_id, prefix)

    def download_artifacts(self, run_id: str, path: str, destination: Path | str) -> Path:
        """Download a file or folder of the run's artifacts into ``destination``.

        Files keep their artifact paths under ``destination``; returns
        ``destination/path``.
        """
        entries = self.list_artifacts(run_id, path)
        if not entries:
            where = f"at {path!r}" if artifact_tree.folder_prefix(path) else "at all"
            raise NotFoundError(
                f"Run {run_id} has no artifact {where}.",
                hint="list_artifacts(run_id) shows what it has.",
            )
        root = Path(destination).expanduser()
        artifact_tree.download(self._stores, entries, root)
        prefix = artifact_tree.folder_prefix(path)
        return root / prefix if prefix else root

    # --- Lifecycle of the client -----------------------------------------------------

    def flush(self) -> None:
        """Wait until everything logged so far is written; raise a write error if any."""
        self._writer.flush()

    def close(self) -> None:
        """Flush, stop the background writer and close the stores this client opened."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        finally:
            if self._owns_stores:
                self._stores.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- Internals -------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise RunStateError(
                "This TrackingClient is closed.", hint="Open a new one for more writes."
            )

    def _writable(self, run_id: str) -> RunState:
        """The state of a run this client may write to; raises why not otherwise."""
        self._check_usable()
        self._writer.raise_error()
        state = self._runs.get(run_id)
        if state is None:
            state = self._runs.load(run_id)
            self._writer.watch(run_id)
        elif not state.writable:
            self._writer.flush()  # an end of ours may be queued: let the store say
            with self._metadata.connect() as conn:
                check_writable(conn, run_id)
            state.writable = True  # it was resumed elsewhere since
            self._writer.watch(run_id)
        return state

    def _log_files(
        self, run_id: str, files: list[tuple[Path, str]], kind: str = "file"
    ) -> list[ArtifactEntry]:
        self._writable(run_id)
        entries = artifact_tree.upload_files(self._stores, files, kind)
        self._record_artifacts(run_id, entries)
        return entries

    def _record_artifacts(self, run_id: str, entries: list[ArtifactEntry]) -> None:
        # Checked again: the run may have ended while the files uploaded. The writer
        # records them after the run's creation and before its end (one transaction).
        self._writable(run_id)
        self._writer.put((ARTIFACTS, run_id, tuple(entries)))

    def _param_conflict(self, run_id: str, key: str, stored: str) -> None:
        state = self._runs.get(run_id)
        if state is not None:
            with self._runs.lock:
                state.params[key] = stored

    def _run_closed(self, run_id: str) -> None:
        state = self._runs.get(run_id)
        if state is not None:
            state.writable = False
        self._writer.unwatch(run_id)

    def _remember_experiment(self, experiment: Experiment) -> None:
        if experiment.lifecycle == "active":
            self._experiments[experiment.id] = experiment
            self._experiments[experiment.name] = experiment

    def _experiment_gone(self, experiment_id: str) -> None:
        gone = self._experiments.get(experiment_id)
        if gone is not None:
            self._experiments.pop(gone.id, None)
            self._experiments.pop(gone.name, None)

    def _experiment(self, id_or_name: str) -> Experiment:
        """The active experiment ``id_or_name``, created if new; cached after the first call.

        A cached experiment that another client deleted since is caught when the run is
        written (the run is then not created, and the error raised by the next call).
        """
        known = self._experiments.get(id_or_name) if id_or_name.__class__ is str else None
        if known is not None:
            return known
        with self._metadata.transaction() as conn:
            experiment = experiments.active_experiment(conn, id_or_name)
        self._remember_experiment(experiment)
        return experiment

    def _experiment_for_run(self, experiment: str | None, parent_id: str | None) -> Experiment:
        """Where a new run goes: ``experiment``, else its parent's, else ``Default``."""
        if parent_id is None:
            return self._experiment(experiment or experiments.DEFAULT_EXPERIMENT)
        parent = self._runs.get(parent_id)
        if parent is None or not parent.writable:
            self._writer.flush()  # the parent may be queued, or ended by us
            with self._metadata.connect() as conn:
                parent_experiment, _, parent_lifecycle, _ = lifecycle.run_row(conn, parent_id)
            if parent_lifecycle == "deleted":
                raise RunStateError(
                    f"Parent run {parent_id} is deleted.", hint="Restore it, or nest elsewhere."
                )
        else:
            parent_experiment = parent.experiment_id
        if experiment is None:
            return self._experiment(parent_experiment)
        target = self._experiment(experiment)
        if target.id != parent_experiment:
            raise TrackingInputError(
                f"Run {parent_id} is in another experiment than {target.name!r}; "
                "a nested run lives in its parent's experiment.",
                hint="Leave experiment out for a nested run.",
            )
        return target

    def _forget(self, run_ids: Sequence[str]) -> None:
        chosen = set(run_ids)
        for run_id in self._runs.forget(lambda run_id, _: run_id in chosen):
            self._writer.unwatch(run_id)

    def _forget_experiment(self, experiment_id: str) -> None:
        for run_id in self._runs.forget(lambda _, state: state.experiment_id == experiment_id):
            self._writer.unwatch(run_id)
