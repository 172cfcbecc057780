"""A model's input example, stored as ``input_example.json`` beside it.

A pandas DataFrame keeps its columns and dtypes, a numpy array its dtype and shape; other
JSON data is stored as is. Only the first ``MAX_EXAMPLE_ROWS`` rows are kept: an example
documents the input, it is not a data set. Missing and non-finite values are stored as
``null`` and read back as missing (NaN).
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

from shipyard.formats.base import ModelFormatError

__all__ = ["EXAMPLE_FILE", "MAX_EXAMPLE_ROWS", "read_example", "write_example"]

EXAMPLE_FILE = "input_example.json"
MAX_EXAMPLE_ROWS = 100


def write_example(example: Any, path: Path) -> None:
    """Write ``example`` to ``path`` as JSON; ``ModelFormatError`` if it cannot be."""
    document = _to_document(example)
    try:
        text = json.dumps(document, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(
            f"The input example ({type(example).__name__}) cannot be stored as JSON: {exc}.",
            hint="Pass a pandas DataFrame, a numpy array, or JSON-style lists and dicts.",
        ) from exc
    path.write_text(text + "\n", encoding="utf-8")


def read_example(path: Path) -> Any:
    """Read an example written by ``write_example`` back as a DataFrame, array or data."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        kind = document["kind"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFormatError(
            f"{str(path)!r} is not a Shipyard input example: {exc}.",
            hint="Save the model again with its input example.",
        ) from exc
    if kind == "dataframe":
        # pandas ships no type stubs; imported by name so the module stays type-checked.
        pd = importlib.import_module("pandas")
        frame = pd.DataFrame(document["data"], columns=document["columns"])
        for column, dtype in document["dtypes"].items():
            try:
                frame[column] = frame[column].astype(dtype)
            except (TypeError, ValueError):  # a dtype the reader's pandas does not know
                continue
        return frame
    if kind == "ndarray":
        import numpy as np

        values = document["data"]
        dtype = np.dtype(document["dtype"])
        if dtype.kind == "f":
            values = _nulls_to_nan(values)
        return np.asarray(values, dtype=dtype).reshape(document["shape"])
    if kind == "json":
        return document["data"]
    raise ModelFormatError(
        f"{str(path)!r} holds an input example of unknown kind {kind!r}.",
        hint="It was written by a newer Shipyard; upgrade to read it.",
    )


def _to_document(example: Any) -> dict[str, Any]:
    module = type(example).__module__.partition(".")[0]
    if module == "polars" and hasattr(example, "to_pandas"):
        example = example.to_pandas()
        module = "pandas"
    if module == "pandas" and hasattr(example, "to_frame") and not hasattr(example, "columns"):
        example = example.to_frame()
    if module == "pandas" and hasattr(example, "columns"):
        frame = example.head(MAX_EXAMPLE_ROWS)
        columns = [str(c) for c in frame.columns]
        rows = [[_scalar(v) for v in row] for row in frame.itertuples(index=False, name=None)]
        dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
        return {"kind": "dataframe", "columns": columns, "dtypes": dtypes, "data": rows}
    if module == "numpy" and hasattr(example, "dtype") and hasattr(example, "shape"):
        array = example[:MAX_EXAMPLE_ROWS] if example.ndim else example
        if array.dtype.kind not in "biufUS?":
            raise ModelFormatError(
                f"The input example is a numpy array of dtype {array.dtype}; only numeric, "
                "boolean and string arrays are stored.",
                hint="Pass a pandas DataFrame for mixed columns.",
            )
        data = _nans_to_null(array.tolist())
        return {
            "kind": "ndarray",
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "data": data,
        }
    if isinstance(example, list):
        example = example[:MAX_EXAMPLE_ROWS]
    return {"kind": "json", "data": _nans_to_null(example)}


def _scalar(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        value = item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if type(value).__module__.startswith("pandas") and str(value) in ("NaT", "<NA>", "nan"):
        return None
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _nans_to_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_nans_to_null(v) for v in value]
    if isinstance(value, dict):
        return {k: _nans_to_null(v) for k, v in value.items()}
    return value


def _nulls_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_nulls_to_nan(v) for v in value]
    return value
