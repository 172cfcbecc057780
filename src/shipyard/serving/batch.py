"""Batch inference: score a Parquet or CSV file into another, in bounded memory.

>>> report = predict_file(registry.load("churn@champion"), "in.parquet", "out.parquet")
>>> report.rows
1000000

The input is read in record batches (``batch_rows`` rows at a time), each batch is
checked against the model's contract (types by a safe cast, then the declared rules,
vectorised with pyarrow.compute), scored, and appended to the output with ``score`` and
``label`` columns (``score_<class>`` per class for a multiclass model). Memory holds one
batch, whatever the file's size. The output is written to a temporary file beside the
target and renamed into place at the end: a failure (a row breaking the contract, named
by its row number and column; the model refusing rows or failing, named by the rows of
the batch it was scoring) leaves no partial output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from shipyard.core.errors import DataContractError, ModelError, NotFoundError, ShipyardError
from shipyard.models.failures import InputRejected
from shipyard.models.records import FieldSpec, Signature

__all__ = ["BatchReport", "predict_file"]

Progress = Callable[[int, int | None], None]  # (done, total) in bytes or rows

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class BatchReport:
    """What a batch prediction read and wrote."""

    input: str
    output: str
    rows: int
    batches: int


def _format(path: Path, what: str) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataContractError(
            f"The {what} file {path} is neither Parquet nor CSV (by its suffix).",
            hint="Name it .parquet or .csv.",
        )
    return fmt


class _CountingFile:
    """A read-only binary file that counts the bytes read (for a progress bar)."""

    def __init__(self, handle: BinaryIO, progress: Progress | None, total: int) -> None:
        self._handle = handle
        self._progress = progress
        self._total = total
        self.done = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.done += len(data)
        if self._progress is not None:
            self._progress(self.done, self._total)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _batches(
    path: Path, fmt: str, signature: Signature, batch_rows: int, progress: Progress | None
) -> Iterator[Any]:
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            total = parquet.metadata.num_rows
            _check_columns(parquet.schema_arrow.names, signature, path)
            done = 0
            for batch in parquet.iter_batches(batch_size=batch_rows):
                done += batch.num_rows
                if progress is not None:
                    progress(done, total)
                yield batch
            return
        import pyarrow.csv as pcsv

        with path.open("rb") as handle:
            header = handle.readline().decode("utf-8", errors="replace")
        import csv

        names = [name.strip() for name in next(csv.reader([header]), [])]
        _check_columns(names, signature, path)
        # Every column as text, inputs cast per batch (a bad cell is named by its row):
        # a streaming reader would otherwise infer types from its first block only, and
        # a later block could not be read, or written to the same output schema.
        types = {name: pa.string() for name in names}
        with path.open("rb") as raw:
            counting = _CountingFile(raw, progress, path.stat().st_size)
            reader = pcsv.open_csv(
                counting,
                read_options=pcsv.ReadOptions(block_size=1 << 22),
                convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
            )
            yield from reader
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataContractError(
            f"Cannot read {path}: {str(exc)[:300]}", hint="Check that it is valid Parquet/CSV."
        ) from exc


def _check_columns(names: list[str], signature: Signature, path: Path) -> None:
    missing = [spec.name for spec in signature.inputs if spec.name not in names]
    if missing:
        raise DataContractError(
            f"{path} lacks the model's input column(s) {', '.join(missing[:10])}.",
            hint=f"The model reads: {', '.join(spec.name for spec in signature.inputs)}.",
        )


def _arrow_type(spec: FieldSpec) -> Any:
    import pyarrow as pa

    name = spec.type.strip().lower()
    simple = {
        "bool": pa.bool_(),
        "string": pa.string(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamp_tz": pa.timestamp("us", tz="UTC"),
    }
    if name in simple:
        return simple[name]
    if re.fullmatch(r"u?int(8|16|32|64)", name):
        return getattr(pa, name)()
    return None


def _checked_batch(batch: Any, signature: Signature, first_row: int, path: Path) -> Any:
    """The batch's input columns cast to the signature's types, every rule enforced."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {}
    for spec in signature.inputs:
        column = batch.column(batch.schema.get_field_index(spec.name))
        target = _arrow_type(spec)
        if target is not None and column.type != target:
            try:
                column = pc.cast(column, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                _raise_bad_cast(column, target, spec, first_row, path, exc)
        _check_rules(column, spec, first_row, path)
        columns[spec.name] = column
    return pa.table(columns)


def _raise_bad_cast(
    column: Any, target: Any, spec: FieldSpec, first_row: int, path: Path, exc: Exception
) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataContractError(
                f"{path} row {first_row + index + 1}, column {spec.name!r}: {value!r:.80} is "
                f"not a {spec.type} value.",
                hint="Fix the row, or check that the file matches the model's signature.",
            ) from exc
    raise DataContractError(
        f"{path} column {spec.name!r} cannot be read as {spec.type}: {exc}"
    ) from exc


def _check_rules(column: Any, spec: FieldSpec, first_row: int, path: Path) -> None:
    import pyarrow.compute as pc

    rules = spec.rules or {}
    checks: list[tuple[str, Any, str]] = []
    if not spec.nullable:
        checks.append(("not_null", pc.is_null(column), "is null; it must have a value"))
    numeric = column.type.__class__.__name__ != "StringType" and spec.type not in ("string",)
    if numeric and isinstance(rules.get("min"), int | float):
        checks.append(
            ("min", pc.less(column, rules["min"]), f"is below the minimum {rules['min']}")
        )
    if numeric and isinstance(rules.get("max"), int | float):
        checks.append(
            ("max", pc.greater(column, rules["max"]), f"is above the maximum {rules['max']}")
        )
    allowed = rules.get("allowed")
    if isinstance(allowed, list | tuple) and allowed:
        import pyarrow as pa

        member = pc.is_in(column, value_set=pa.array(list(allowed), type=column.type))
        checks.append(
            ("allowed", pc.and_(pc.invert(member), pc.is_valid(column)), "is not an allowed value")
        )
    pattern = rules.get("pattern") or rules.get("regex")
    if isinstance(pattern, str) and not numeric:
        matches = pc.match_substring_regex(column, f"^(?:{pattern})$")
        checks.append(("pattern", pc.invert(matches), f"does not match /{pattern}/"))
    for rule, mask, text in checks:
        bad = pc.fill_null(mask, False)
        if pc.any(bad).as_py():
            index = pc.index(bad, True).as_py()
            value = column[index].as_py()
            raise DataContractError(
                f"{path} row {first_row + index + 1}, column {spec.name!r}: {value!r:.80} "
                f"{text} (rule {rule}).",
                hint="Fix or remove the row; the model's contract refuses it.",
            )


def _output_columns(prediction: Any, signature: Signature, taken: set[str]) -> dict[str, Any]:
    import numpy as np

    def name(base: str) -> str:
        return base if base not in taken else f"{base}_predicted"

    scores = np.asarray(prediction.scores)
    out: dict[str, Any] = {}
    if scores.ndim == 2:
        classes = signature.classes or tuple(range(scores.shape[1]))
        for index, cls in enumerate(classes):
            out[name(f"score_{cls}")] = scores[:, index]
    else:
        out[name("score")] = scores
    if prediction.labels is not None:
        out[name("label")] = np.asarray(prediction.labels).tolist()
    return out


def predict_file(
    model: Any,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_rows: int = 50_000,
    progress: Progress | None = None,
) -> BatchReport:
    """Score every row of ``input_path`` with ``model`` into ``output_path``."""
    import pyarrow as pa

    source = Path(input_path)
    target = Path(output_path)
    if not source.is_file():
        raise NotFoundError(f"Input file {source} does not exist.", hint="Check the path.")
    in_format = _format(source, "input")
    out_format = _format(target, "output")
    if source.resolve() == target.resolve():
        raise DataContractError(
            f"The output {target} is the input file.", hint="Write to another file."
        )
    if not 1 <= batch_rows <= 10_000_000:
        raise DataContractError(f"batch_rows is {batch_rows}; use 1 to 10,000,000.")
    if not target.parent.is_dir():
        raise NotFoundError(
            f"The output folder {target.parent} does not exist.", hint="Create it first."
        )
    signature: Signature = model.signature
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    writer: Any = None
    rows = batches = 0
    try:
        for batch in _batches(source, in_format, signature, batch_rows, progress):
            if batch.num_rows == 0:
                continue
            inputs = _checked_batch(batch, signature, rows, source)
            try:
                prediction = model.predict(inputs)
            except (ModelError, InputRejected) as exc:
                raise _in_rows(exc, source, rows, batch.num_rows) from exc
            table = pa.Table.from_batches([batch])
            for column_name in inputs.column_names:  # the typed inputs, in place
                position = table.schema.get_field_index(column_name)
                table = table.set_column(position, column_name, inputs.column(column_name))
            for column_name, values in _output_columns(
                prediction, signature, set(table.column_names)
            ).items():
                table = table.append_column(column_name, pa.array(values))
            writer = _write(writer, table, temporary, out_format)
            rows += batch.num_rows
            batches += 1
        if writer is None:
            raise DataContractError(f"{source} has no rows to score.")
        writer.close()
        writer = None
        os.replace(temporary, target)
    finally:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
    return BatchReport(str(source), str(target), rows, batches)


def _in_rows(
    error: ModelError | InputRejected, path: Path, first_row: int, count: int
) -> ShipyardError:
    """``error`` of the model on one batch, saying where in ``path`` it was: the row and
    column when the model's message points at them, else the batch's rows."""
    row = error.row if isinstance(error, InputRejected) else None
    if row is not None:
        where = f"{path} row {first_row + row + 1}"
    else:
        where = f"{path} rows {first_row + 1}-{first_row + count}"
    if isinstance(error, ModelError):
        return ModelError(f"{where}: {error.message}", hint=error.hint)
    cause = error.__cause__ or error
    column = f", column {error.column!r}" if error.column is not None else ""
    return InputRejected(
        f"{where}{column}: the model cannot take the value(s): {type(cause).__name__}: "
        f"{str(cause)[:300]}",
        hint=error.hint,
        row=None if row is None else first_row + row,
        column=error.column,
    )


def _write(writer: Any, table: Any, path: Path, fmt: str) -> Any:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        return writer
    import pyarrow.csv as pcsv

    if writer is None:
        writer = pcsv.CSVWriter(path, table.schema)
    writer.write_table(table)
    return writer
