"""Buffered, batched writes of runs, metrics, params, tags and records, off the caller's
thread.

A ``log_metric`` call validates its arguments and appends one tuple to an in-memory
queue (a few microseconds); so do ``create_run`` (the run's id is made by the client),
``set_terminated``, and the records of ``log_artifact`` and ``log_input`` once their
checks passed and their files are in the artifact store. A background thread per client
writes the queue to the metadata store in ONE transaction per flush, in dependency
order: the runs created, the values, then the artifact and input records and the run
ends; so a run created, logged to and ended within a flush interval costs no round
trip of its own:

- every ``flush_interval`` seconds (default ``FLUSH_INTERVAL`` = 0.25 s; flushes are
  scheduled on a fixed clock, so a value waits at most one interval for its flush), or
  as soon as ``batch_size`` values (default 10,000) are waiting, or when the caller
  flushes (``flush()``, ending a run, reading a run, closing the client, process exit);
- metric history goes to ``run_metrics`` in bulk (COPY / executemany); ``run_latest_metrics``
  is upserted (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``: the highest step wins, then
  the latest timestamp), rows sorted so concurrent writers lock them in the same order;
- params are insert-or-ignore, then read back: a different value already stored (by
  another process) is a conflict. The client refuses a different value synchronously
  from its cache of the run's params, so that conflict surfaces at once in the common
  case, and at the next call after the flush when another process won the race;
- tags are upserted (the last value wins);
- the same transaction refreshes ``runs.heartbeat_at`` of the runs this client writes to
  every ``HEARTBEAT_INTERVAL`` seconds (5 s); ``mark_stale_runs`` fails runs whose
  heartbeat stopped. A run of this client that was marked stale while the process was
  merely stalled (suspended laptop, a GIL-hogging extension) is revived by the next
  heartbeat: its status goes back to ``running``;
- on SQLite, once a flush has committed and woken its waiters, the writer (when nothing
  else is queued) checkpoints the write-ahead log into the database file (PASSIVE), so
  that SQLite's own checkpoint does not run inside a later commit someone waits for.

Errors never vanish: a failed flush is kept and raised by the client's next call
(``log_*``, ``flush``, ``set_terminated``, ``close``). Values whose run has ended, been
deleted or purged meanwhile are dropped with a ``RunStateError`` / ``NotFoundError``
saying how many; a run whose experiment or parent another client deleted after
``create_run`` checked it is not created, and its writes are dropped with a
``RunStateError``. When the database is unreachable the values are kept and retried at
every flush (and the error raised to the caller meanwhile); at ``close`` a last attempt
is made and whatever still cannot be written is reported in the raised error. The queue
holds at most ``max_pending`` values (1,000,000): beyond it a logging call waits for the
writer, so a producer faster than the database slows down instead of exhausting memory.

What a crash loses:

- normal exit, an exception or Ctrl-C inside a run: nothing (the run is ended and the
  queue flushed; at interpreter exit an ``atexit`` hook flushes every client);
- SIGKILL (or power loss, ``os._exit``): what was queued in the last flush interval
  before the kill (values, and runs created, ended or given artifact records in that
  interval: a run created less than an interval before the kill may not exist at all),
  plus what a flush was committing at that instant (a few milliseconds), i.e. at most
  ``flush_interval`` + one commit; more only when the process was logging faster than
  the database absorbs, in which case the backlog (at most ``max_pending`` values) is
  lost too. Artifact bytes already stored without their record are freed by garbage
  collection. ``tests/tracking/test_writer.py`` kills a logging process and checks
  this bound.

Before a fork the parent flushes every writer (so a child can log to runs its parent
created); the child starts with an empty queue and no thread and opens its own
database connections.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from shipyard.core.errors import BackendError, BackendUnavailableError
from shipyard.store.metadata import MetadataStore
from shipyard.tracking.batches import (
    ARTIFACTS,
    END,
    INPUT,
    METRIC,
    PARAM,
    RUN,
    STALE_ERROR_PREFIX,
    TAG,
    Batch,
    Item,
    Outcome,
    Statements,
    write_batch,
)
from shipyard.tracking.runs import insert_queued_runs, write_run_records

__all__ = [
    "ARTIFACTS",
    "BATCH_SIZE",
    "END",
    "FLUSH_INTERVAL",
    "HEARTBEAT_INTERVAL",
    "INPUT",
    "MAX_PENDING",
    "METRIC",
    "PARAM",
    "RUN",
    "STALE_ERROR_PREFIX",
    "TAG",
    "Writer",
]

FLUSH_INTERVAL = 0.25
"""Seconds between flushes: the most a SIGKILL loses (plus one commit in flight)."""
BATCH_SIZE = 10_000
"""Values waiting that trigger a flush before the interval ends (and the most per transaction)."""
MAX_PENDING = 1_000_000
"""Values waiting beyond which a logging call blocks until the writer catches up."""
HEARTBEAT_INTERVAL = 5.0
"""Seconds between refreshes of ``runs.heartbeat_at`` for the runs a client writes to."""

_ATTEMPTS = 5
_CLOSE_TIMEOUT_SECONDS = 60.0
_BACKPRESSURE_TIMEOUT_SECONDS = 60.0
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")

_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


class Writer:
    """The background writer of one tracking client (see the module docstring).

    >>> writer = Writer(store)
    >>> writer.put((METRIC, run_id, "loss", 0.5, 0, time.time()))
    >>> writer.flush()  # everything put so far is committed, or its error is raised
    >>> writer.close()
    """

    def __init__(
        self,
        metadata: MetadataStore,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        on_param_conflict: Callable[[str, str, str], None] | None = None,
        on_run_closed: Callable[[str], None] | None = None,
        on_experiment_gone: Callable[[str], None] | None = None,
    ) -> None:
        if not (math.isfinite(flush_interval) and flush_interval > 0):
            raise ValueError(f"flush_interval must be > 0 seconds, not {flush_interval}")
        if batch_size < 1 or max_pending < batch_size:
            raise ValueError("batch_size must be >= 1 and max_pending >= batch_size")
        self._metadata = metadata
        self.flush_interval = float(flush_interval)
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._heartbeat_interval = heartbeat_interval
        self._on_param_conflict = on_param_conflict
        self._on_run_closed = on_run_closed
        self._on_experiment_gone = on_experiment_gone
        self._statements = Statements(metadata.dialect)
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        self._queue: deque[Item | threading.Event] = deque()
        self._retry: list[Batch] = []
        self._retained = 0  # values in self._retry: they count against max_pending too
        self._errors: list[BaseException] = []
        self._wake = threading.Event()
        self._wake_requested = False
        self._drained = threading.Condition()
        self._watched: set[str] = set()
        self._last_heartbeat = 0.0
        self._checkpoint_due = False
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._lock = threading.Lock()

    # --- The caller's side -----------------------------------------------------------

    def put(self, item: Item) -> None:
        """Queue one value (the hot path: no I/O, no lock in the common case)."""
        if self._closed:
            self._refuse_closed()
        self._queue.append(item)
        self._queued()

    def put_many(self, items: Sequence[Item]) -> None:
        """Queue several values at once (one call's worth: the bounds are checked after)."""
        if self._closed:
            self._refuse_closed()
        self._queue.extend(items)
        self._queued()

    def _queued(self) -> None:
        # After a put: start the writer, wake it at a full batch, hold the caller at the bound.
        if self._thread is None:
            self._start()
        waiting = len(self._queue) + self._retained
        if waiting >= self._batch_size and not self._wake_requested:
            self._wake_requested = True
            self._wake.set()
        if waiting >= self._max_pending:
            self._wait_for_room()

    def watch(self, run_id: str) -> None:
        """Keep this run's heartbeat fresh while the client writes to it."""
        with self._lock:
            self._watched.add(run_id)
        if self._thread is None:
            self._start()

    def unwatch(self, run_id: str) -> None:
        with self._lock:
            self._watched.discard(run_id)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is committed, then raise any write error.

        Also waits for a flush in progress (its values left the queue but are not
        committed yet), so a read after ``flush()`` sees every value logged before it.
        """
        self.wait(timeout)
        self.raise_error()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written or failed (errors are kept)."""
        thread = self._thread
        if thread is not None and not self._closed:
            marker = threading.Event()
            self._queue.append(marker)
            self._wake.set()
            deadline = None if timeout is None else time.monotonic() + timeout
            while not marker.wait(0.2) and thread.is_alive():
                if deadline is not None and time.monotonic() > deadline:
                    raise BackendError(
                        f"Tracking writes to {self._metadata.display_uri} did not finish "
                        f"within {timeout} s.",
                        hint="The database may be locked by a long transaction; retry.",
                    )

    def raise_error(self) -> None:
        """Raise the first error a background flush met (once), noting any others."""
        if not self._errors:
            return
        with self._lock:
            errors, self._errors = self._errors, []
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"Also: {other}")
        raise first

    def close(self) -> None:
        """Flush everything, stop the thread, raise what could not be written."""
        if self._closed:
            self.raise_error()
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._stopping = True
            self._wake.set()
            thread.join(_CLOSE_TIMEOUT_SECONDS)
            if thread.is_alive():
                self._fail(
                    BackendError(
                        f"Tracking writes to {self._metadata.display_uri} were still running "
                        f"after {_CLOSE_TIMEOUT_SECONDS:.0f} s at close; "
                        f"{len(self._queue):,} values were not written."
                    )
                )
        _writers.discard(self)
        self.raise_error()

    # --- The background thread -------------------------------------------------------

    def _refuse_closed(self) -> None:
        raise BackendError(
            "This tracking client is closed; it accepts no more values.",
            hint="Open a new TrackingClient (or use it in a with block that covers the run).",
        )

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self._closed:
                self._refuse_closed()
            thread = threading.Thread(
                target=self._loop, name=f"shipyard-tracking-writer-{id(self):x}", daemon=True
            )
            self._thread = thread
        thread.start()

    def _wait_for_room(self) -> None:
        def room() -> bool:
            return len(self._queue) + self._retained < self._max_pending // 2 or self._stopping

        with self._drained:
            self._wake.set()
            if self._drained.wait_for(room, timeout=_BACKPRESSURE_TIMEOUT_SECONDS):
                return
        raise BackendError(
            f"{len(self._queue) + self._retained:,} tracking values are waiting in memory: "
            f"{self._metadata.display_uri} has not taken any for "
            f"{_BACKPRESSURE_TIMEOUT_SECONDS:.0f} s. The value just logged is kept.",
            hint="Check that the database is reachable and not locked; or log less often.",
        )

    def _loop(self) -> None:
        next_flush = time.monotonic() + self.flush_interval
        while True:
            timeout = max(0.0, next_flush - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            self._wake_requested = False
            stopping = self._stopping
            started = time.monotonic()
            if started >= next_flush:
                next_flush += self.flush_interval
                if next_flush <= started:  # a flush overran the interval: catch up from now
                    next_flush = started + self.flush_interval
            try:
                self._flush_once(final=stopping)
            except BaseException as exc:  # noqa: BLE001 - kept and raised to the caller
                self._fail(exc)
            if stopping:
                self._release_markers()
                return
            if self._checkpoint_due and not self._queue:  # idle: no write waits for it
                self._checkpoint()

    def _flush_once(self, *, final: bool) -> None:
        """Write what is queued now (several transactions if more than a batch)."""
        markers: list[threading.Event] = []
        try:
            retry, self._retry = self._retry, []
            self._retained = 0
            for batch in retry:
                self._write(batch, final=final)
            remaining = len(self._queue)
            while True:
                items: list[Item] = []
                while remaining > 0 and len(items) < self._batch_size:
                    entry = self._queue.popleft()
                    remaining -= 1
                    if isinstance(entry, threading.Event):
                        markers.append(entry)
                    else:
                        items.append(entry)
                heartbeat_due = (
                    time.monotonic() - self._last_heartbeat >= self._heartbeat_interval
                    and bool(self._watched)
                )
                if items or heartbeat_due:
                    self._write(Batch.of(items), final=final)
                with self._drained:
                    self._drained.notify_all()
                if remaining <= 0 and final and self._queue:
                    remaining = len(self._queue)  # logged while closing: still ours to write
                if remaining <= 0:
                    break
        finally:
            for marker in markers:
                marker.set()

    def _release_markers(self) -> None:
        """At close, after the last flush: wake every waiter, count what was left behind."""
        left = 0
        while self._queue:
            entry = self._queue.popleft()
            if isinstance(entry, threading.Event):
                entry.set()
            else:
                left += 1
        if left:
            self._fail(
                BackendError(
                    f"{left:,} tracking values were not written to "
                    f"{self._metadata.display_uri} before the client closed.",
                    hint="See the error raised with this one for why the last flush failed.",
                )
            )

    def _write(self, batch: Batch, *, final: bool) -> None:
        """One transaction: heartbeat, run checks, params, tags, metrics. Retries conflicts."""
        pause = 0.05
        for attempt in range(_ATTEMPTS):
            try:
                self._transaction(batch)
                return
            except BackendError as exc:  # could not begin: unreachable, or locked too long
                self._keep_for_retry(batch, exc, final)
                return
            except DBAPIError as exc:
                if _is_transient(exc) and attempt < _ATTEMPTS - 1:
                    time.sleep(pause)
                    pause *= 2
                    continue
                if _is_unavailable(exc):
                    self._keep_for_retry(batch, exc, final)
                    return
                raise BackendError(
                    f"Writing {batch.describe()} to {self._metadata.display_uri} failed: "
                    f"{_reason(exc)}.",
                    hint="These values were not written; fix the cause and log them again.",
                ) from exc

    def _keep_for_retry(self, batch: Batch, exc: BaseException, final: bool) -> None:
        if final:
            self._fail(
                BackendUnavailableError(
                    f"Could not write {batch.describe()} to {self._metadata.display_uri} "
                    f"before closing: {exc}; they are lost.",
                    hint="Check that the database is reachable before ending a run.",
                )
            )
            return
        self._retry.append(batch)
        self._retained += len(batch)
        if any(isinstance(error, BackendUnavailableError) for error in self._errors):
            return  # reported already; not once per flush of a long outage
        self._fail(
            BackendUnavailableError(
                f"Writing {batch.describe()} to {self._metadata.display_uri} failed: {exc}. "
                "They are kept in memory and retried at every flush.",
                hint="Check that the database is reachable.",
            )
        )

    def _transaction(self, batch: Batch) -> None:
        now = time.monotonic()
        with self._lock:
            watched = set(self._watched)
        due = now - self._last_heartbeat >= self._heartbeat_interval
        outcome = Outcome()
        with self._metadata.transaction() as conn:
            created: dict[str, Any] = {}
            if batch.runs:
                batch, created = insert_queued_runs(
                    conn, self._metadata, self._statements, batch, outcome
                )
            batch = write_batch(
                conn,
                self._statements,
                batch,
                heartbeat=sorted(watched) if due else [],
                # A run being ended is still this client's: revive it if marked stale.
                watched=watched.union(batch.ends) if batch.ends else watched,
                outcome=outcome,
                created=created,
            )
            if batch.ends or batch.artifacts or batch.inputs:
                write_run_records(conn, self._metadata, batch, outcome)
        if due:
            self._last_heartbeat = now
        self._checkpoint_due = self._metadata.dialect == "sqlite"
        self._apply(outcome)

    def _checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file, once the flush that
        grew it has woken its waiters.

        Otherwise SQLite does it inside the commit that takes the log past 1,000 pages
        (its auto-checkpoint, still there for larger transactions), with a caller waiting
        for that commit: a third of the time of a flush of 200 short runs. PASSIVE: it
        neither waits for nor blocks readers and writers. Commits are durable before it
        as after it (``synchronous=NORMAL``: a power loss may lose the commits since the
        last checkpoint, which now comes sooner).
        """
        self._checkpoint_due = False
        try:
            with self._metadata.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except DBAPIError:
            # Nothing is lost: the log stays until a later checkpoint (SQLite's own, at a
            # commit); a store that cannot be used fails the next flush, saying why.
            return

    def _apply(self, outcome: Outcome) -> None:
        for run_id, key, stored in outcome.param_conflicts:
            if self._on_param_conflict is not None:
                self._on_param_conflict(run_id, key, stored)
        for run_id in outcome.closed_runs:
            self.unwatch(run_id)
            if self._on_run_closed is not None:
                self._on_run_closed(run_id)
        for experiment_id in outcome.gone_experiments:
            if self._on_experiment_gone is not None:
                self._on_experiment_gone(experiment_id)
        for error in outcome.errors:
            self._fail(error)


def _reason(exc: DBAPIError) -> str:
    cause = exc.orig if exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(cause).__name__


def _is_transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _is_unavailable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (3, 8, 10, 13, 14)  # PERM READONLY IOERR FULL CANTOPEN
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)


def _flush_all_before_fork() -> None:
    for writer in list(_writers):
        if writer._thread is not None and not writer._closed:
            try:
                writer.wait(_CLOSE_TIMEOUT_SECONDS)
            except BackendError:  # stuck: the child must not wait for it; errors are kept
                continue


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._reset()
        writer._metadata.engine.dispose(close=False)


def _flush_all_at_exit() -> None:
    for writer in list(_writers):
        try:
            writer.close()
        except Exception as exc:  # noqa: BLE001 - the interpreter is exiting: report, go on
            print(f"shipyard: tracking writes lost at exit: {exc}", file=sys.stderr)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_flush_all_before_fork, after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)
