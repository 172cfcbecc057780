"""Training/serving skew: served values against a point-in-time replay of the offline store.

Each logged row (the entity keys, the request time, the values served) is replayed
offline at its request time, seeing only rows that existed then (created at or before
it), with the same TTL and the same on-demand code. A served value that differs from the
replay, or is present where the replay has none (or the reverse), is skew. Late-arriving
offline rows are not skew: the replay does not see them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.features.records import FeatureSkew, SkewReport
from shipyard.features.training import point_in_time, read_entity_rows

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.store import FeatureSpec, FeatureStore

__all__ = ["check_skew"]

_REPLAY = "__replay__"


def _mismatches(served: pa.ChunkedArray, replay: pa.ChunkedArray, tolerance: float) -> Any:
    """Boolean numpy mask of rows whose served value differs from the replay."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    served_null = served.is_null().to_numpy(zero_copy_only=False)
    replay_null = replay.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(replay.type) or pa.types.is_integer(replay.type):
        try:
            a = served.cast(pa.float64()).fill_null(0).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return served_null | replay_null | True
        b = replay.cast(pa.float64()).fill_null(0).to_numpy(zero_copy_only=False)
        differs = ~np.isclose(a, b, rtol=tolerance, atol=tolerance, equal_nan=True)
    else:
        try:
            equal = pc.equal(served.cast(replay.type), replay).fill_null(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.ones(len(served), dtype=bool)
        differs = ~equal.to_numpy(zero_copy_only=False)
    both_valid = ~served_null & ~replay_null
    return (served_null != replay_null) | (both_valid & differs)


def check_skew(
    fs: FeatureStore,
    logged_rows: Any,
    service: FeatureSpec,
    *,
    timestamp: str,
    tolerance: float,
    max_offending: int,
) -> SkewReport:
    """See :meth:`shipyard.features.store.FeatureStore.skew`."""
    import numpy as np

    what = "the logged online values"
    table = read_entity_rows(fs, logged_rows, what=what)
    if table.num_rows == 0:
        raise DataContractError(f"{what} have no rows.", hint="Give at least one logged row.")
    plan = fs.plan(service)
    compared = [name for name in plan.outputs if name in table.column_names]
    if not compared:
        raise DataContractError(
            f"{what} have none of the service's features as columns "
            f"(expected some of: {', '.join(plan.outputs)}).",
            hint="Log one column per served feature, named like the feature.",
        )
    rename = [
        (name, f"{_REPLAY}{name}")
        for name in {
            *(f for part in plan.views for f in part.features),
            *(f.name for odfv in plan.on_demands for f in odfv.outputs),
        }
    ]
    replay, _ = point_in_time(
        fs, table, plan, timestamp, what=what, created_as_of=True, rename=rename
    )
    keys = list(dict.fromkeys(k for part in plan.views for k in part.view.join_keys))
    results: list[FeatureSkew] = []
    offending: list[dict[str, Any]] = []
    for name in compared:
        served = replay.column(name)
        replayed = replay.column(f"{_REPLAY}{name}")
        mask = _mismatches(served, replayed, tolerance)
        results.append(FeatureSkew(name, table.num_rows, int(mask.sum())))
        rows = np.flatnonzero(mask)[: max(0, max_offending - len(offending))].tolist()
        offending.extend(
            {
                "row": row,
                **{k: replay.column(k)[row].as_py() for k in keys},
                timestamp: replay.column(timestamp)[row].as_py(),
                "feature": name,
                "served": served[row].as_py(),
                "expected": replayed[row].as_py(),
            }
            for row in rows
        )
    return SkewReport(plan.label, table.num_rows, tuple(results), tuple(offending))
