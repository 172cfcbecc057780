"""The calls that log to a run: metrics, params, tags, dataset inputs and artifacts.

``RunLogging`` is the part of ``TrackingClient`` that writes to runs. Every call checks
its input and the run's state at once and raises then; what it writes is queued for the
client's background writer (``shipyard.tracking.writer``), except artifact bytes, which
go to the artifact store before the call returns.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import NotFoundError
from shipyard.tracking import artifacts as artifact_tree
from shipyard.tracking import experiments, lifecycle
from shipyard.tracking.client_state import ClientState
from shipyard.tracking.records import ArtifactEntry, DatasetInput
from shipyard.tracking.runs import check_input
from shipyard.tracking.validation import (
    MAX_STEP,
    VALID_KEYS,
    mapping_items,
    metric_step,
    metric_timestamp,
    metric_value,
    param_value,
    validate_key,
)
from shipyard.tracking.writer import ARTIFACTS, INPUT, METRIC, PARAM, TAG

if TYPE_CHECKING:
    from shipyard.formats import ModelInfo

__all__ = ["RunLogging"]


class RunLogging(ClientState):
    """Logging to runs (part of ``TrackingClient``): every call names its run."""

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
