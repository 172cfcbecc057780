"""Ground-truth labels, joined to logged predictions by request id, however late.

>>> import shipyard.monitoring as mon
>>> mon.log_labels("req-42", 1)                         # one label
>>> report = mon.log_label_file("labels.csv")           # request_id,label columns
>>> report.stored, report.bad_rows[:1]
(998, [BadLabelRow(row=17, request_id='x', reason='no prediction has this request id')])

A label for a request id that is already labelled replaces it (the last label wins). A
label whose request id is not in the prediction log is refused (it could never be
joined), as are empty ids, missing labels and non-scalar labels; a file's bad rows are
reported by row number (1 = the first data row) and its good rows are stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError, NotFoundError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.store.metadata import MetadataStore

__all__ = ["BadLabelRow", "LabelReport", "log_label_file", "log_labels", "store_labels"]

_MAX_REQUEST_ID = 160
_MAX_LABEL_CHARS = 1024
_LOOKUP_CHUNK = 500
_READ_BATCH_ROWS = 50_000
_BAD_ROWS_KEPT = 1000


@dataclass(frozen=True)
class BadLabelRow:
    """A label row that was not stored, and why (``row``: 1 = the first data row)."""

    row: int
    request_id: Any
    reason: str


@dataclass
class LabelReport:
    """What a label import stored and refused."""

    source: str
    stored: int = 0
    bad: int = 0
    bad_rows: list[BadLabelRow] = field(default_factory=list)

    def add_bad(self, row: BadLabelRow) -> None:
        self.bad += 1
        if len(self.bad_rows) < _BAD_ROWS_KEPT:
            self.bad_rows.append(row)


def log_labels(request_id: str, label: Any, *, config: Config | None = None) -> None:
    """Store the ground truth of one logged prediction.

    Raises ``NotFoundError`` when no prediction has that request id and
    ``DataContractError`` for an empty id or a label that is not a scalar value.
    """
    from shipyard.core.config import load_config
    from shipyard.store.stores import open_stores

    with open_stores(config or load_config()) as stores:
        report = store_labels(stores.metadata, [(1, request_id, label)], source="log_labels")
    if report.bad_rows:
        bad = report.bad_rows[0]
        if bad.reason.startswith("no prediction"):
            raise NotFoundError(
                f"No logged prediction has request id {request_id!r}.",
                hint="Use the request_id the service returned (or the X-Request-ID you "
                "sent; '<id>:<n>' for record n of a batch). The log is written within a "
                "second of the answer.",
            )
        raise DataContractError(f"Label for request id {request_id!r}: {bad.reason}.")


def log_label_file(path: str | Path, *, config: Config | None = None) -> LabelReport:
    """Store the labels of a CSV or Parquet file with ``request_id`` and ``label`` columns."""
    from shipyard.core.config import load_config
    from shipyard.store.stores import open_stores

    rows = read_label_file(path)
    with open_stores(config or load_config()) as stores:
        return store_labels(stores.metadata, rows, source=str(path))


def read_label_file(path: str | Path) -> Iterator[tuple[int, Any, Any]]:
    """Yield ``(row_number, request_id, label)`` from a CSV or Parquet file, in batches."""
    import pyarrow as pa

    file = Path(path)
    if not file.is_file():
        raise NotFoundError(
            f"Label file {file} does not exist.", hint="Give a CSV or Parquet file path."
        )
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(file)
            _check_columns(parquet.schema_arrow.names, file)
            batches: Iterable[pa.RecordBatch] = parquet.iter_batches(
                batch_size=_READ_BATCH_ROWS, columns=["request_id", "label"]
            )
        elif suffix in (".csv", ".txt"):
            import pyarrow.csv as pcsv

            _check_columns(_csv_header(file), file)
            # Both as text: a streaming reader infers types per block and would fail on a
            # later block; labels are parsed one by one instead (_csv_label).
            reader = pcsv.open_csv(
                file,
                convert_options=pcsv.ConvertOptions(
                    column_types={"request_id": pa.string(), "label": pa.string()},
                    strings_can_be_null=True,
                    include_columns=["request_id", "label"],
                ),
            )
            batches = reader
        else:
            raise DataContractError(
                f"Label file {file} is neither .csv nor .parquet.",
                hint="Save it as CSV (request_id,label header) or Parquet.",
            )
        row = 0
        for batch in batches:
            ids = batch.column(batch.schema.get_field_index("request_id")).to_pylist()
            labels = batch.column(batch.schema.get_field_index("label")).to_pylist()
            if suffix != ".parquet":
                labels = [_csv_label(label) for label in labels]
            for request_id, label in zip(ids, labels, strict=True):
                row += 1
                yield row, request_id, label
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, KeyError) as exc:
        raise DataContractError(
            f"Cannot read label file {file}: {exc}",
            hint="It needs a header with request_id and label columns.",
        ) from exc


def _csv_header(file: Path) -> list[str]:
    import csv

    with file.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader([handle.readline()]), [])
    return [name.strip() for name in header]


def _csv_label(text: str | None) -> Any:
    """A CSV label as the value it spells: an integer, a number, else the text."""
    if text is None:
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def _check_columns(names: Sequence[str], file: Path) -> None:
    missing = [name for name in ("request_id", "label") if name not in names]
    if missing:
        raise DataContractError(
            f"Label file {file} has no column {', '.join(missing)} (it has: "
            f"{', '.join(names[:20]) or 'none'}).",
            hint="Name the columns request_id and label.",
        )


def _label_problem(label: Any) -> str | None:
    if label is None:
        return "the label is empty"
    if isinstance(label, bool | int | str):
        if isinstance(label, str) and (not label.strip() or len(label) > _MAX_LABEL_CHARS):
            return f"the label must be 1 to {_MAX_LABEL_CHARS} characters"
        return None
    if isinstance(label, float):
        return None if math.isfinite(label) else "the label is not a finite number"
    return f"the label is a {type(label).__name__}; expected a number, string or boolean"


def _id_problem(request_id: Any) -> str | None:
    if not isinstance(request_id, str) or not request_id.strip():
        return "the request_id is empty"
    if len(request_id) > _MAX_REQUEST_ID:
        return f"the request_id is longer than {_MAX_REQUEST_ID} characters"
    return None


def store_labels(
    metadata: MetadataStore, rows: Iterable[tuple[int, Any, Any]], *, source: str
) -> LabelReport:
    """Validate and upsert labels; every refused row is in the report with its reason."""
    report = LabelReport(source=source)
    chunk: dict[str, tuple[int, Any]] = {}
    for row, request_id, label in rows:
        problem = _id_problem(request_id) or _label_problem(label)
        if problem:
            report.add_bad(BadLabelRow(row, request_id, problem))
            continue
        if request_id in chunk:
            earlier = chunk[request_id][0]
            report.add_bad(
                BadLabelRow(earlier, request_id, f"request_id repeated at row {row}; kept it")
            )
        chunk[request_id] = (row, label)
        if len(chunk) >= _LOOKUP_CHUNK:
            _write_chunk(metadata, chunk, source, report)
            chunk = {}
    if chunk:
        _write_chunk(metadata, chunk, source, report)
    report.bad_rows.sort(key=lambda bad: bad.row)
    return report


def _write_chunk(
    metadata: MetadataStore,
    chunk: dict[str, tuple[int, Any]],
    source: str,
    report: LabelReport,
) -> None:
    from sqlalchemy import select

    from shipyard.store.schema.monitoring import prediction_log

    now = datetime.now(UTC)
    with metadata.transaction() as conn:
        known = set(
            conn.execute(
                select(prediction_log.c.request_id)
                .where(prediction_log.c.request_id.in_(list(chunk)))
                .distinct()
            ).scalars()
        )
        values = []
        for request_id, (row, label) in chunk.items():
            if request_id not in known:
                report.add_bad(BadLabelRow(row, request_id, "no prediction has this request id"))
                continue
            values.append(
                {"request_id": request_id, "label": label, "labeled_at": now, "source": source}
            )
        if values:
            conn.execute(_upsert(metadata), values)
            report.stored += len(values)


def _upsert(metadata: MetadataStore) -> Any:
    from shipyard.store.schema.monitoring import prediction_labels

    if metadata.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    statement = insert(prediction_labels)
    return statement.on_conflict_do_update(
        index_elements=["request_id"],
        set_={
            "label": statement.excluded.label,
            "labeled_at": statement.excluded.labeled_at,
            "source": statement.excluded.source,
        },
    )
