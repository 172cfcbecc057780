"""Step outputs as typed artifacts: how each kind of value is stored, identified and read.

========================  ===========  ===============================================
a step returns             kind         stored as (one blob each unless said otherwise)
========================  ===========  ===============================================
pyarrow / pandas / polars  ``table``    Parquet, written with fixed settings
table
a model a safe format      ``model``    ``shipyard.formats`` folder, one blob per file
knows (sklearn, LightGBM,
XGBoost, ONNX)
JSON data (dict, list,     ``json``     canonical JSON
str, number, bool, None)
numpy array                ``numpy``    ``.npy`` without pickle
anything else              ``pickle``   only with ``@step(allow_pickle=True)``
========================  ===========  ===============================================

An output's id is a content id that does not depend on when or where it was written, so
a deterministic step gives the same output ids on every run and every executor: for one
blob kinds it is the blob's id (the writers are deterministic); for a model it is the
hash of the model's identity (flavor, format, class and each file's canonical digest),
because a skops file names its members after memory addresses and stamps them with the
time. The model's manifest (with its ``created_at``) is stored but not part of the id.

Models are slow to read back from their safe format, so a process keeps the last models
it wrote or read in memory (bounded) and hands a step that reads one a deep copy.
"""

from __future__ import annotations

import copy
import io
import pickle  # noqa: S403 - only behind an explicit allow_pickle=True
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shipyard.core.errors import IntegrityError, NotFoundError, ShipyardError
from shipyard.core.ids import ContentId
from shipyard.pipelines.canonical import canonical_json, json_problem
from shipyard.pipelines.errors import PipelineDefinitionError, StepOutputError
from shipyard.pipelines.model_identity import model_identity
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.artifacts_local import LocalArtifactStore

__all__ = ["OutputKind", "OutputRecord", "output_problem", "read_output", "write_output"]

OutputKind = Literal["table", "model", "json", "numpy", "pickle"]

_TABLE_FILE = "table.parquet"
_JSON_FILE = "value.json"
_NUMPY_FILE = "array.npy"
_PICKLE_FILE = "value.pkl"
_MANIFEST = "shipyard-model.json"


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One stored step output: its id, kind, and the blobs that hold it."""

    id: str
    kind: OutputKind
    python_type: str
    """What the step returned: ``pandas.DataFrame``, ``pyarrow.Table``, ``json``..."""
    blobs: Mapping[str, str]
    """File name -> blob id."""
    size: int
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "python_type": self.python_type,
            "blobs": dict(self.blobs),
            "size": self.size,
            "detail": dict(self.detail),
        }


def write_output(
    value: Any, artifacts: ArtifactStore, *, step: str, output: str, allow_pickle: bool
) -> OutputRecord:
    """Store ``value`` as the output ``output`` of step ``step``; return its record.

    Raises ``StepOutputError`` naming the step, the output and the fix when no safe
    format can hold the value.
    """
    module = type(value).__module__.split(".", 1)[0]
    if module in ("pyarrow", "pandas", "polars"):
        table = _as_arrow_table(value, step, output)
        if table is not None:
            return _write_table(table, _type_name(value), artifacts)
    if module == "numpy":
        return _write_numpy(value, artifacts, step, output)
    if json_problem(value) is None:
        data = canonical_json(value)
        blob = artifacts.put_bytes(data)
        return OutputRecord(
            blob, "json", "json", {_JSON_FILE: blob}, len(data), {"type": type(value).__name__}
        )
    model = _try_model(value, artifacts, _type_name(value))
    if model is not None:
        return model
    if allow_pickle:
        data = pickle.dumps(value, protocol=5)
        blob = artifacts.put_bytes(data)
        return OutputRecord(blob, "pickle", _type_name(value), {_PICKLE_FILE: blob}, len(data))
    raise StepOutputError(
        f"Step {step!r} returned a {_type_name(value)} as output {output!r}; no safe format "
        "stores that type.",
        hint="Return a table (pyarrow, pandas, polars), a model (scikit-learn, LightGBM, "
        "XGBoost, ONNX), a numpy array or JSON data; or declare @step(allow_pickle=True) to "
        "store it with pickle (steps that read it then need allow_pickle=True too).",
    )


def read_output(
    record: OutputRecord, artifacts: ArtifactStore, *, allow_pickle: bool, reader: str
) -> Any:
    """Load a stored output back into the type the producing step returned.

    ``reader`` names the step reading it, for the error a pickled output raises when the
    reader did not opt in.
    """
    if record.kind == "table":
        return _read_table(artifacts.get_bytes(ContentId(record.blobs[_TABLE_FILE])), record)
    if record.kind == "json":
        import json

        return json.loads(artifacts.get_bytes(ContentId(record.blobs[_JSON_FILE])))
    if record.kind == "numpy":
        import numpy as np

        data = artifacts.get_bytes(ContentId(record.blobs[_NUMPY_FILE]))
        return np.load(io.BytesIO(data), allow_pickle=False)
    if record.kind == "model":
        return _read_model(record, artifacts)
    if record.kind == "pickle":
        if not allow_pickle:
            raise PipelineDefinitionError(
                f"Step {reader!r} reads output {record.id} ({record.python_type}), which is "
                "stored with pickle; unpickling runs whatever code the bytes name.",
                hint=f"If you trust the step that wrote it, declare "
                f"@step(allow_pickle=True) on {reader!r}.",
            )
        data = artifacts.get_bytes(ContentId(record.blobs[_PICKLE_FILE]))
        return pickle.loads(data)  # noqa: S301 - opted in above
    raise StepOutputError(f"Output {record.id} has unknown kind {record.kind!r}.")


def output_problem(
    record: OutputRecord, artifacts: ArtifactStore, *, discard_corrupted: bool = False
) -> str | None:
    """Why a stored output cannot be reused (a blob missing or corrupted), or ``None``.

    With ``discard_corrupted``, a blob whose bytes no longer match its id is deleted, so
    that re-running the step stores it afresh (putting bytes the store believes it holds
    would not replace the bad file).
    """
    for name, blob in sorted(record.blobs.items()):
        try:
            artifacts.verify(ContentId(blob))
        except NotFoundError:
            return f"its blob {name} ({blob}) is missing from the artifact store"
        except IntegrityError:
            if discard_corrupted:
                artifacts.delete(ContentId(blob))
            return f"its blob {name} ({blob}) no longer matches its content id"
    return None


# --- tables ---------------------------------------------------------------------------


def _as_arrow_table(value: Any, step: str, output: str) -> Any:
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    module = type(value).__module__.split(".", 1)[0]
    name = type(value).__name__
    if module == "pandas" and name == "DataFrame":
        try:
            return pa.Table.from_pandas(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise StepOutputError(
                f"Step {step!r} returned a pandas DataFrame as output {output!r} that Arrow "
                f"cannot convert: {exc}.",
                hint="Give each column one type (e.g. df[col] = df[col].astype(str)).",
            ) from exc
    if module == "polars" and name == "DataFrame":
        return value.to_arrow()
    if module in ("pandas", "polars") and name == "Series":
        raise StepOutputError(
            f"Step {step!r} returned a {module} Series as output {output!r}.",
            hint="Return a table: series.to_frame().",
        )
    return None


def _write_table(table: Any, python_type: str, artifacts: ArtifactStore) -> OutputRecord:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # Fixed settings: the same table always gives the same bytes, hence the same id.
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
        data_page_version="1.0",
        row_group_size=1 << 20,
    )
    data = sink.getvalue().to_pybytes()
    blob = artifacts.put_bytes(data)
    detail = {"rows": table.num_rows, "columns": list(table.column_names)}
    return OutputRecord(blob, "table", python_type, {_TABLE_FILE: blob}, len(data), detail)


def _read_table(data: bytes, record: OutputRecord) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    if record.python_type == "pandas.DataFrame":
        return table.to_pandas()
    if record.python_type == "polars.DataFrame":
        import polars as pl

        return pl.from_arrow(table)
    return table


# --- numpy ----------------------------------------------------------------------------


def _write_numpy(value: Any, artifacts: ArtifactStore, step: str, output: str) -> OutputRecord:
    import numpy as np

    if isinstance(value, np.generic):  # a numpy scalar is a number: store it as JSON
        return write_output(value.item(), artifacts, step=step, output=output, allow_pickle=False)
    if not isinstance(value, np.ndarray):
        raise StepOutputError(
            f"Step {step!r} returned a {_type_name(value)} as output {output!r}.",
            hint="Return a numpy.ndarray (np.asarray(value)).",
        )
    buffer = io.BytesIO()
    try:
        np.save(buffer, value, allow_pickle=False)
    except ValueError as exc:
        raise StepOutputError(
            f"Step {step!r} returned a numpy array of dtype {value.dtype} as output "
            f"{output!r}; object arrays need pickle.",
            hint="Convert it to a numeric or string dtype, or return a table.",
        ) from exc
    data = buffer.getvalue()
    blob = artifacts.put_bytes(data)
    detail = {"shape": list(value.shape), "dtype": str(value.dtype)}
    return OutputRecord(blob, "numpy", "numpy.ndarray", {_NUMPY_FILE: blob}, len(data), detail)


# --- models ---------------------------------------------------------------------------


def _try_model(value: Any, artifacts: ArtifactStore, python_type: str) -> OutputRecord | None:
    from shipyard.formats import ModelFormatError, detect_flavor, save_model

    try:
        flavor = detect_flavor(value, allow_pickle=False)
    except ModelFormatError:
        return None
    scratch = Path(tempfile.mkdtemp(prefix="shipyard-model-"))
    try:
        folder = scratch / "model"
        # Not durable: the folder is deleted below; the artifact store fsyncs each blob.
        info = save_model(value, folder, flavor=flavor.name, durable=False)
        hashed = {entry.name: entry.content_id for entry in info.files}
        blobs = {
            path.name: _store_file(artifacts, path, hashed.get(path.name))
            for path in sorted(folder.iterdir())
        }
        identity = model_identity(info, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    size = sum(entry.size for entry in info.files)
    detail = {
        "flavor": info.flavor,
        "model_format": info.model_format,
        "model_class": info.model_class,
    }
    _models.put(identity, copy.deepcopy(value), size)
    return OutputRecord(identity, "model", python_type, blobs, size, detail)


def _store_file(artifacts: ArtifactStore, path: Path, content_id: ContentId | None) -> str:
    """Store a file of the scratch model folder: hard-linked into a local store (no copy,
    and no second hash when ``save_model`` hashed it), copied into any other store."""
    if isinstance(artifacts, LocalArtifactStore):
        # Only this process writes the private scratch folder, so the file is as hashed.
        hashed_as = None if content_id is None else (content_id, path.stat())
        return artifacts.put_file(path, link=True, hashed_as=hashed_as)
    return artifacts.put_file(path)


class _ModelMemo:
    """Models this process wrote or loaded, by output id, handed out as deep copies.

    A model's safe format is slow to read back (skops rebuilds and audits every object:
    0.4 s for a 100-tree forest, against 0.05 s for a deep copy). An output id names
    exactly one model, so a model written or read once in this process can be handed to
    the next step that reads it as a copy of the object in memory; the copy keeps a step
    that changes its input from changing anyone else's. Bounded by the models' stored
    sizes; the least recently used go first.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._models: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, output_id: str, model: Any, size: int) -> None:
        if size > self.max_bytes // 2:
            return
        with self._lock:
            self._models[output_id] = (model, size)
            self._models.move_to_end(output_id)
            while sum(s for _, s in self._models.values()) > self.max_bytes:
                self._models.popitem(last=False)

    def get(self, output_id: str) -> Any | None:
        with self._lock:
            found = self._models.get(output_id)
            if found is None:
                return None
            self._models.move_to_end(output_id)
        return copy.deepcopy(found[0])


_models = _ModelMemo(max_bytes=512 << 20)


def _read_model(record: OutputRecord, artifacts: ArtifactStore) -> Any:
    from shipyard.formats import load_model

    remembered = _models.get(record.id)
    if remembered is not None:
        return remembered
    if _MANIFEST not in record.blobs:
        raise ShipyardError(f"Model output {record.id} has no {_MANIFEST} blob.")
    scratch = Path(tempfile.mkdtemp(prefix="shipyard-model-"))
    try:
        folder = scratch / "model"
        folder.mkdir()
        for name, blob in record.blobs.items():
            artifacts.get_file(ContentId(blob), folder / Path(name).name)
        model = load_model(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _models.put(record.id, model, record.size)
    return copy.deepcopy(model)


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__.split(".", 1)[0]
    return f"{module}.{cls.__qualname__}"
