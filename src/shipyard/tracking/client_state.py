"""What a ``TrackingClient`` holds between calls, and the bookkeeping shared by its calls.

``ClientState`` owns the stores, the background ``Writer``, the states of the runs the
client writes to (``RunStates``) and a cache of active experiments; it checks whether a
run can be written to, answers the writer's callbacks, and flushes and closes.
``RunLogging`` (``client_logging``) and ``TrackingClient`` (``client``) build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self

from shipyard.core.config import Config, load_config
from shipyard.store.stores import Stores, open_stores
from shipyard.tracking import capture, experiments, lifecycle
from shipyard.tracking.records import Experiment
from shipyard.tracking.runs import RunState, RunStates, check_writable
from shipyard.tracking.validation import RunStateError, TrackingInputError
from shipyard.tracking.writer import FLUSH_INTERVAL, Writer

__all__ = ["ClientState"]


class ClientState:
    """The stores, writer, run states and experiment cache of one client (see
    ``TrackingClient``, the class to use)."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        stores: Stores | None = None,
        flush_interval: float = FLUSH_INTERVAL,
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

    @property
    def stores(self) -> Stores:
        return self._stores

    @property
    def flush_interval(self) -> float:
        return self._writer.flush_interval

    def __repr__(self) -> str:
        return f"TrackingClient({self._metadata.display_uri!r})"

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
