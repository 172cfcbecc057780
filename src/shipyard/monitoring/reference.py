"""What drift is measured against: a reference, and the per-column summaries of a window.

A :class:`Reference` is built once and reused for every window (Evidently recomputes its
reference on every run). It comes from a dataset version's stored profile and sample
(:func:`reference_from_dataset`; nothing is re-read but the 10,000-row sample), or from
any Arrow table (:meth:`Reference.from_table`). Per column it keeps a
:class:`ColumnSummary`:

- numeric columns: the sorted finite values of a uniform sample (the exact tests, KS and
  Wasserstein, and the quantile bins of PSI and Jensen-Shannon run on it), and the
  standard deviation of the whole column;
- categorical columns: the count of every category over the whole column (from the
  profile, exact: its top 50 plus an ``other`` count);
- both: rows and missing values (null, NaN, infinite) over the whole column.

A current window is summarized the same way, but with all its values
(:func:`summarize_column`): one cast and one sort per numeric column.

>>> reference = Reference.from_table(training_table)
>>> reference.columns["tenure"].kind
'numeric'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.core.errors import DataContractError

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.core.config import Config
    from shipyard.data.client import DatasetClient

__all__ = [
    "ColumnKind",
    "ColumnSummary",
    "Reference",
    "column_kind",
    "reference_from_dataset",
    "summarize_column",
]

ColumnKind = Literal["numeric", "categorical"]
SAMPLE_ROWS = 10_000
"""Rows kept from a table reference, as many as a dataset profile's sample."""
_SEED = 20_261_126
_SKETCH_POINTS = 1_000
"""Pseudo-sample drawn from a KLL sketch when a profile has no sample of a column."""


def category_label(value: Any) -> str:
    """One spelling of a category, whichever side it comes from (profile JSON or Arrow)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True, eq=False)
class ColumnSummary:
    """What drift detection needs of one column of a reference or a window.

    ``values`` (numeric) are sorted finite values, all of them or a uniform sample
    (``sampled``); ``categories``/``counts`` (categorical) count every non-missing value,
    with ``other`` the values a profile counted without naming them.
    """

    name: str
    kind: ColumnKind
    rows: int
    missing: int
    values: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )
    std: float = math.nan
    categories: tuple[str, ...] = ()
    counts: np.ndarray[Any, np.dtype[np.int64]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    other: int = 0
    complete: bool = True
    sampled: bool = False

    @property
    def present(self) -> int:
        """Non-missing values in the whole column."""
        return self.rows - self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    @property
    def sample_size(self) -> int:
        """How many values the tests see (the sample for numeric, all for categorical)."""
        if self.kind == "numeric":
            return len(self.values)
        return int(self.counts.sum()) + self.other

    def shares(self) -> dict[str, float]:
        """Each category's share of the non-missing values."""
        total = self.sample_size
        if not total:
            return {}
        return {c: int(n) / total for c, n in zip(self.categories, self.counts, strict=True)}


def column_kind(arrow_type: pa.DataType) -> ColumnKind | None:
    """Numbers are numeric; strings, booleans and dictionaries are categorical; other
    types (timestamps, binary, nested) are not compared."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return "categorical"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "categorical"
    if pa.types.is_boolean(arrow_type) or getattr(pa.types, "is_string_view", bool)(arrow_type):
        return "categorical"
    return None


def _numeric_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, np.dtype[np.float64]]:
    import pyarrow as pa

    try:
        as_float = column.cast(pa.float64(), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataContractError(
            f"Column of type {column.type} cannot be read as numbers: {exc}",
            hint="Declare it categorical, or cast it to a number type.",
        ) from exc
    values: np.ndarray[Any, np.dtype[np.float64]] = np.asarray(
        as_float.to_numpy(zero_copy_only=False), dtype=np.float64
    )
    return values


def summarize_column(
    name: str,
    column: pa.ChunkedArray | pa.Array,
    kind: ColumnKind,
    *,
    sample_rows: int | None = None,
    seed: int = _SEED,
    with_std: bool = True,
) -> ColumnSummary:
    """Summarize one column of a window (or, with ``sample_rows``, of a reference).

    ``with_std=False`` skips the standard deviation (only a reference's is used)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(column)
    if kind == "numeric":
        values = _numeric_values(column)
        if sample_rows is not None:
            values = values[np.isfinite(values)]
            missing = rows - len(values)
            std = float(np.std(values)) if len(values) else math.nan  # of the whole column
            sampled = len(values) > sample_rows
            if sampled:
                rng = np.random.Generator(np.random.PCG64(seed))
                values = values[rng.choice(len(values), size=sample_rows, replace=False)]
            finite = np.sort(values)
        else:
            # One sort, then the finite values are a slice: -inf sorts first, NaN last.
            ordered = np.sort(values)
            low = int(np.searchsorted(ordered, -np.inf, side="right"))
            high = int(np.searchsorted(ordered, np.inf, side="left"))
            finite = ordered[low:high]
            missing = rows - len(finite)
            sampled = False
            std = float(np.std(finite)) if len(finite) and with_std else math.nan
        return ColumnSummary(name, kind, rows, missing, values=finite, std=std, sampled=sampled)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    counted = pc.value_counts(column)
    labels = counted.field("values")
    counts = np.asarray(counted.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)
    keep = np.asarray(labels.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    names = [category_label(v) for v in labels.filter(pa.array(keep)).to_pylist()]
    counts = counts[keep]
    return _categorical(name, rows, rows - int(counts.sum()), names, counts, 0, True)


def _categorical(
    name: str,
    rows: int,
    missing: int,
    labels: Iterable[str],
    counts: np.ndarray[Any, Any],
    other: int,
    complete: bool,
) -> ColumnSummary:
    merged: dict[str, int] = {}
    for label, count in zip(labels, counts.tolist(), strict=True):
        merged[label] = merged.get(label, 0) + int(count)  # "1" and 1 spell alike
    ordered = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    return ColumnSummary(
        name,
        "categorical",
        rows,
        missing,
        categories=tuple(label for label, _ in ordered),
        counts=np.array([count for _, count in ordered], dtype=np.int64),
        other=other,
        complete=complete,
    )


@dataclass(frozen=True, slots=True, eq=False)
class Reference:
    """The reference distribution of every compared column, and where it came from.

    ``sample`` is a uniform sample of the reference rows (the multivariate check trains
    on it); ``source`` names the origin (``churn@v3``, or ``table``).
    """

    columns: Mapping[str, ColumnSummary]
    rows: int
    source: str
    sample: pa.Table | None = None

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        *,
        columns: Iterable[str] | None = None,
        categorical: Iterable[str] = (),
        sample_rows: int = SAMPLE_ROWS,
        source: str = "table",
    ) -> Reference:
        """A reference from an Arrow table: exact counts and missing rates over all rows,
        and a uniform sample of ``sample_rows`` rows for the numeric tests.

        ``categorical`` names number columns to compare as categories (codes, ids).
        """
        _require_table(table, "reference")
        if sample_rows < 1:
            raise DataContractError(
                f"sample_rows must be at least 1, got {sample_rows}.",
                hint="Keep the default (10,000) unless memory is tight.",
            )
        kinds = _kinds(table.schema, columns, categorical)
        summaries = {
            name: summarize_column(name, table.column(name), kind, sample_rows=sample_rows)
            for name, kind in kinds.items()
        }
        sample = table
        if table.num_rows > sample_rows:
            rng = np.random.Generator(np.random.PCG64(_SEED))
            chosen = np.sort(rng.choice(table.num_rows, size=sample_rows, replace=False))
            sample = table.take(chosen)
        return cls(summaries, table.num_rows, source, sample.select(list(kinds)))

    @classmethod
    def from_profile(
        cls,
        profile: Mapping[str, Any],
        sample: pa.Table | None,
        *,
        columns: Iterable[str] | None = None,
        categorical: Iterable[str] = (),
        source: str = "profile",
    ) -> Reference:
        """A reference from a dataset version's profile (see ``shipyard.data.profile``) and
        its row sample: category counts, missing rates and standard deviations from the
        profile (whole version), numeric values from the sample (or, for a column the
        sample lacks, 1,000 points read off the column's quantile sketch)."""
        stats = profile.get("columns")
        rows = profile.get("rows")
        if not isinstance(stats, Mapping) or not isinstance(rows, int):
            raise DataContractError(
                f"The profile of {source} has no 'columns' or 'rows'; it is not a "
                "shipyard.profile.v1 document.",
                hint="Pass the dict DatasetClient.profile() returns.",
            )
        wanted = set(columns) if columns is not None else None
        forced = set(categorical)
        summaries: dict[str, ColumnSummary] = {}
        for name, column in stats.items():
            if wanted is not None and name not in wanted:
                continue
            summary = _from_profile_column(str(name), column, rows, sample, name in forced)
            if summary is not None:
                summaries[str(name)] = summary
        if wanted is not None and (unknown := sorted(wanted - set(summaries))):
            raise DataContractError(
                f"Columns {unknown} are not comparable columns of {source}.",
                hint=f"Choose among {sorted(summaries)}.",
            )
        kept = sample.select([c for c in summaries if c in sample.column_names]) if sample else None
        return cls(summaries, rows, source, kept)


def _from_profile_column(
    name: str, stats: Any, rows: int, sample: pa.Table | None, forced: bool
) -> ColumnSummary | None:
    if not isinstance(stats, Mapping):
        return None
    type_name = str(stats.get("type", ""))
    missing = int(stats.get("nulls") or 0) + int(stats.get("nan") or 0)
    in_sample = sample is not None and name in sample.column_names
    if type_name.startswith(("int", "uint", "float", "decimal")) and not forced:
        std = stats.get("std")
        if in_sample and sample is not None:
            values = summarize_column(name, sample.column(name), "numeric").values
        else:
            points = _sketch_points(stats)
            if points is None:
                return None
            values = points
        return ColumnSummary(
            name,
            "numeric",
            rows,
            missing,
            values=values,
            std=float(std) if isinstance(std, int | float) else float(np.std(values)),
            sampled=True,
        )
    if type_name in ("string", "bool") or type_name.startswith(("int", "uint")):
        categories = stats.get("categories")
        if isinstance(categories, Mapping) and isinstance(categories.get("values"), list):
            pairs = [p for p in categories["values"] if isinstance(p, list) and len(p) == 2]
            return _categorical(
                name,
                rows,
                missing,
                [category_label(v) for v, _ in pairs],
                np.array([int(n) for _, n in pairs], dtype=np.int64),
                int(categories.get("other") or 0),
                bool(categories.get("complete", True)),
            )
        if in_sample and sample is not None:
            # Too many distinct values for the profile to list: count them in the sample.
            counted = summarize_column(name, sample.column(name), "categorical")
            scale = (rows - missing) / max(counted.present, 1)
            return _categorical(
                name,
                rows,
                missing,
                counted.categories,
                np.rint(counted.counts * scale).astype(np.int64),
                0,
                False,
            )
    return None


def _sketch_points(stats: Mapping[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    import base64

    encoded = stats.get("kll")
    if not isinstance(encoded, str):
        return None
    from datasketches import kll_doubles_sketch

    sketch = kll_doubles_sketch.deserialize(base64.b64decode(encoded))
    ranks = (np.arange(_SKETCH_POINTS) + 0.5) / _SKETCH_POINTS
    points = np.sort(np.asarray(sketch.get_quantiles(ranks.tolist()), dtype=np.float64))
    return points


def _require_table(table: Any, what: str) -> None:
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        raise DataContractError(
            f"The {what} must be a pyarrow.Table, got {type(table).__name__}.",
            hint="Convert with pyarrow.Table.from_pandas(df) or read a dataset version.",
        )


def _kinds(
    schema: pa.Schema, columns: Iterable[str] | None, categorical: Iterable[str]
) -> dict[str, ColumnKind]:
    forced = set(categorical)
    names = list(columns) if columns is not None else list(schema.names)
    missing = [n for n in [*names, *forced] if n not in schema.names]
    if missing:
        raise DataContractError(
            f"Columns {sorted(set(missing))} are not in the table.",
            hint=f"The table has {schema.names}.",
        )
    kinds: dict[str, ColumnKind] = {}
    for name in names:
        kind = column_kind(schema.field(name).type)
        if name in forced and kind is not None:
            kind = "categorical"
        if kind is not None:
            kinds[name] = kind
        elif columns is not None:
            raise DataContractError(
                f"Column {name!r} has type {schema.field(name).type}; drift compares "
                "numbers, strings and booleans only.",
                hint="Leave it out of columns=, or cast it first.",
            )
    return kinds


def reference_from_dataset(
    reference: str,
    *,
    columns: Iterable[str] | None = None,
    categorical: Iterable[str] = (),
    client: DatasetClient | None = None,
    config: Config | None = None,
) -> Reference:
    """The reference of a dataset version (``churn@v3``, ``churn@prod``): its stored
    profile and sample, nothing else is read."""
    from shipyard.data.client import DatasetClient

    own = client is None
    active = client or DatasetClient.open(config)
    try:
        version = active.get_version(reference)
        profile = active.profile(reference)
        sample = active.read_sample(reference) if version.sample_blob else None
    finally:
        if own:
            active.close()
    return Reference.from_profile(
        profile,
        sample,
        columns=columns,
        categorical=categorical,
        source=version.reference,
    )
