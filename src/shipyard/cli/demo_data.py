"""The demo's table: read a binary-classification CSV, infer column roles, prepare it.

The shipped churn table (``shipyard/demo_data/mlc_churn.csv``) has no customer id, no
event times and no dirty rows; a table the user names with ``--data`` may lack them too.
:func:`prepare` adds what is missing, openly (the demo says what it added): an id per row,
event times spread over past months, a handful of corrupted rows for the contract to
quarantine, and splits off a later batch of new customers whose most predictive numeric
columns are shifted (drift planted in real columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataContractError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHURN_FILE",
    "Prepared",
    "Roles",
    "infer_roles",
    "prepare",
    "read_table",
]

CHURN_FILE = Path(__file__).resolve().parent.parent / "demo_data" / "mlc_churn.csv"
"""The churn table shipped inside the package (see demo_data/SOURCE.md)."""

_MIN_ROWS = 200
_POSITIVE_WORDS = ("yes", "true", "1", "y", "churn", "churned", "positive", "bad", "default")


@dataclass(frozen=True)
class Roles:
    """What each column is for. ``id_added``/``time_added``: the demo created the column."""

    target: str
    positive: str
    negative: str
    entity: str
    id_column: str
    id_added: bool
    time_column: str
    time_added: bool
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    shift: tuple[str, ...]
    fairness_by: str | None

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


@dataclass(frozen=True)
class Corruption:
    """One corrupted row: its id, the column changed and what it now holds."""

    row_id: int
    column: str
    value: Any
    why: str


@dataclass
class Prepared:
    """The history (ingested first), the later shifted batch, and what was changed."""

    roles: Roles
    history: pd.DataFrame
    batch: pd.DataFrame
    batch_unshifted: pd.DataFrame
    corruptions: list[Corruption] = field(default_factory=list)
    shifts: dict[str, str] = field(default_factory=dict)
    source: str = ""


def read_table(path: Path) -> pd.DataFrame:
    """The CSV as a DataFrame; a missing, empty or unreadable file is a clear error."""
    import pandas as pd

    if not path.exists():
        raise NotFoundError(
            f"Data file {path} does not exist.",
            hint="Pass an existing CSV file: shipyard demo --data FILE --target COLUMN.",
        )
    if not path.is_file():
        raise DataContractError(f"{path} is a folder, not a CSV file.", hint="Name a CSV file.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataContractError(f"{path} is empty.", hint="Name a CSV file with rows.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataContractError(
            f"{path} could not be read as CSV: {str(exc).splitlines()[0][:200]}",
            hint="Give a comma-separated UTF-8 file with a header row.",
        ) from exc
    if frame.shape[1] < 2:
        raise DataContractError(
            f"{path} has {frame.shape[1]} column; the demo needs a target and features.",
            hint="Give a comma-separated file with a header row.",
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_column(frame: pd.DataFrame, name: str, option: str, path: str) -> None:
    if name not in frame.columns:
        shown = ", ".join(list(frame.columns)[:25])
        raise DataContractError(
            f"{option} names column {name!r}, which {path} does not have (its columns: {shown}).",
            hint=f"Pick one of the file's columns for {option}.",
        )


def _positive_class(values: list[str], counts: dict[str, int], positive: str | None) -> str:
    if positive is not None:
        if positive not in values:
            raise DataContractError(
                f"--positive {positive!r} is not a value of the target ({', '.join(values)}).",
                hint="Name one of the target's two values.",
            )
        return positive
    for word in _POSITIVE_WORDS:
        for value in values:
            if value.strip().lower() == word:
                return value
    return min(values, key=lambda v: (counts[v], v))  # the rarer class is what one looks for


def infer_roles(
    frame: pd.DataFrame,
    target: str,
    *,
    path: str = "the data",
    positive: str | None = None,
    entity: str = "customer",
    id_column: str | None = None,
    time_column: str | None = None,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    shift: Sequence[str] = (),
    fairness_by: str | None = None,
    drop: Sequence[str] = (),
) -> Roles:
    """Column roles: target, id, time, numeric vs categorical features, the columns to
    shift and the slice for the fairness gate. Options given win over inference."""
    import pandas as pd

    _check_column(frame, target, "--target", path)
    for option, names in (
        ("--categorical", categorical),
        ("--numeric", numeric),
        ("--shift", shift),
        ("--drop", drop),
    ):
        for name in names:
            _check_column(frame, name, option, path)
    for option, maybe in (
        ("--id-column", id_column),
        ("--time-column", time_column),
        ("--fairness-by", fairness_by),
    ):
        if maybe is not None:
            _check_column(frame, maybe, option, path)
    labels = frame[target].dropna().astype(str)
    counts = labels.value_counts().to_dict()
    values = sorted(counts)
    if len(values) != 2:
        shown = ", ".join(repr(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataContractError(
            f"Target column {target!r} of {path} has {len(values)} distinct values ({shown}); "
            "the demo needs a binary target (two values).",
            hint="Pick a yes/no column, or map the target to two classes first.",
        )
    if min(counts.values()) < 20:
        raise DataContractError(
            f"Target {target!r} of {path} has only {min(counts.values())} rows of one class; "
            "the demo needs at least 20 of each to evaluate.",
            hint="Use a larger table.",
        )
    chosen = _positive_class(values, counts, positive)
    negative = next(v for v in values if v != chosen)
    skip = {target, *drop}
    if id_column is None:
        id_name, id_added = f"{entity}_id", True
        if id_name in frame.columns:
            raise DataContractError(
                f"{path} already has a column {id_name!r}; say whether it is the id.",
                hint=f"Pass --id-column {id_name}, or another --entity.",
            )
    else:
        id_name, id_added = id_column, False
    time_name, time_added = (time_column, False) if time_column else ("event_ts", True)
    if time_added and time_name in frame.columns:
        raise DataContractError(
            f"{path} already has a column 'event_ts'; say whether it is the event time.",
            hint="Pass --time-column event_ts.",
        )
    skip |= {id_name, time_name}
    cats = list(categorical)
    nums = list(numeric)
    for name in frame.columns:
        if name in skip or name in cats or name in nums:
            continue
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            distinct = column.nunique(dropna=True)
            if distinct > max(50, len(frame) // 5):
                continue  # free text or an identifier: not a feature
            cats.append(name)
        elif column.nunique(dropna=True) <= 1:
            continue
        else:
            nums.append(name)
    both = sorted(set(cats) & set(nums))
    if both:
        raise ConfigError(f"Columns {both} are given as both --categorical and --numeric.")
    if not cats and not nums:
        raise DataContractError(f"{path} has no feature column beside the target {target!r}.")
    y = (frame[target].astype(str) == chosen).astype(float)
    if shift:
        shifted = tuple(shift)
        bad = [name for name in shifted if name not in nums]
        if bad:
            raise ConfigError(
                f"--shift names {bad}, which are not numeric features.",
                hint="Shift numeric feature columns.",
            )
    else:
        strength = {
            name: abs(float(frame[name].astype(float).corr(y)) or 0.0)
            for name in nums
            if frame[name].astype(float).std() > 0
        }
        ranked = sorted(
            strength, key=lambda n: (-(strength[n] if strength[n] == strength[n] else 0), n)
        )
        shifted = tuple(ranked[:3])
    if fairness_by is None:
        small = [c for c in cats if 2 <= frame[c].nunique(dropna=True) <= 6]
        fairness_by = small[0] if small else None
    return Roles(
        target=target,
        positive=chosen,
        negative=negative,
        entity=entity,
        id_column=id_name,
        id_added=id_added,
        time_column=time_name,
        time_added=time_added,
        categorical=tuple(cats),
        numeric=tuple(nums),
        shift=shifted,
        fairness_by=fairness_by,
    )


def _corrupt(history: pd.DataFrame, roles: Roles, rng: Any) -> list[Corruption]:
    """Change a handful of rows so that each breaks one rule of the contract."""
    plans: list[tuple[str, Any, str]] = []
    nonneg = [c for c in roles.numeric if float(history[c].min()) >= 0]
    if nonneg:
        plans += [(nonneg[0], -999, f"negative {nonneg[0]} (the contract says >= 0)")] * 4
    plans += [(roles.target, None, f"missing {roles.target} (the label may not be empty)")] * 4
    if roles.categorical:
        name = roles.categorical[0]
        plans += [(name, "##garbled##", f"{name} outside its known values")] * 4
    elif roles.numeric:
        name = roles.numeric[-1]
        plans += [(name, float(history[name].max()) * 1000 + 1, f"{name} far above its range")] * 4
    rows = rng.choice(len(history), size=len(plans), replace=False)
    out: list[Corruption] = []
    for position, (column, value, why) in zip(rows.tolist(), plans, strict=True):
        index = history.index[position]
        if value is None:
            history.loc[index, column] = None
        else:
            if column in roles.numeric and history[column].dtype.kind in "iu" and value == -999:
                history[column] = history[column].astype("int64")
            history.loc[index, column] = value
        out.append(Corruption(int(history.loc[index, roles.id_column]), column, value, why))
    return out


def _shift(batch: pd.DataFrame, roles: Roles, reference: pd.DataFrame) -> dict[str, str]:
    """Move the batch's most predictive numeric columns up by 1.5 standard deviations."""
    described: dict[str, str] = {}
    for name in roles.shift:
        std = float(reference[name].astype(float).std())
        step = 1.5 * std
        if batch[name].dtype.kind in "iu":
            step = max(1.0, round(step))
            batch[name] = batch[name] + int(step)
        else:
            batch[name] = (batch[name].astype(float) + step).round(2)
        mean = float(reference[name].astype(float).mean())
        described[name] = f"+{step:.4g} (mean {mean:.4g} -> {mean + step:.4g})"
    return described


def prepare(
    frame: pd.DataFrame,
    roles: Roles,
    *,
    now: datetime | None = None,
    rows: int | None = None,
    batch_share: float = 0.25,
    seed: int = 7,
    source: str = "",
) -> Prepared:
    """Shuffle, add ids and event times when absent, corrupt a few history rows, and
    split off the shifted batch (the newest customers)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    now = now or datetime.now(UTC).replace(microsecond=0)
    keep = [c for c in frame.columns if c in {roles.target, *roles.features}]
    if not roles.id_added:
        keep.append(roles.id_column)
    if not roles.time_added:
        keep.append(roles.time_column)
    data = frame[keep].dropna(subset=[roles.target]).copy()
    data[roles.target] = data[roles.target].astype(str)
    if rows is not None and rows < len(data):
        data = data.sample(n=rows, random_state=seed)
    else:
        data = data.sample(frac=1.0, random_state=seed)
    if len(data) < _MIN_ROWS:
        raise DataContractError(
            f"{source or 'The data'} has {len(data)} labelled rows; the demo needs at least "
            f"{_MIN_ROWS}.",
            hint="Use a larger table (or a larger --rows).",
        )
    for name in roles.categorical:
        data[name] = data[name].astype("string").astype(object)
    data = data.reset_index(drop=True)
    if roles.id_added:
        data.insert(0, roles.id_column, np.arange(1, len(data) + 1, dtype=np.int64))
    elif data[roles.id_column].duplicated().any() or data[roles.id_column].isna().any():
        raise DataContractError(
            f"Id column {roles.id_column!r} has repeated or empty values.",
            hint="Name a column with one distinct value per row, or let the demo add ids.",
        )
    cut = len(data) - max(50, int(len(data) * batch_share))
    if roles.time_added:
        # History spread over the past six months; the new batch over the last ten days.
        old = rng.uniform(30 * 86400, 180 * 86400, size=cut)
        new = rng.uniform(3600, 10 * 86400, size=len(data) - cut)
        seconds = np.concatenate([old, new]).astype(np.int64)
        data.insert(1, roles.time_column, [now - timedelta(seconds=int(s)) for s in seconds])
    else:
        stamps = pd.to_datetime(data[roles.time_column], utc=True, errors="coerce")
        if stamps.isna().any():
            raise DataContractError(
                f"Time column {roles.time_column!r} has values that are not dates.",
                hint="Name a column of ISO dates/times, or let the demo add event times.",
            )
        data[roles.time_column] = stamps
        data = data.sort_values(roles.time_column, kind="stable").reset_index(drop=True)
    history = data.iloc[:cut].copy()
    batch_unshifted = data.iloc[cut:].copy()
    batch = batch_unshifted.copy()
    shifts = _shift(batch, roles, history)
    corruptions = _corrupt(history, roles, rng)
    return Prepared(roles, history, batch, batch_unshifted, corruptions, shifts, source)
