"""Evaluations stored per model version: metrics, gate results, threshold, plots.

``shipyard.evaluation`` computes them and calls ``ModelRegistry.record_evaluation``; the
newest one decides promotion (``ModelRegistry.promote``) and gives the version its
decision threshold. Plots are SVG text kept as artifact blobs (referenced for GC under
``owner_kind='model_evaluation'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from shipyard.core.ids import ContentId
from shipyard.models import catalog
from shipyard.models.errors import ModelInputError
from shipyard.models.records import Evaluation, GateResult, ModelVersion
from shipyard.models.serialize import check_gate_results, gate_result_to_dict, json_value
from shipyard.store.metadata import BlobRef
from shipyard.store.schema.models import model_evaluations
from shipyard.store.stores import Stores

__all__ = ["MAX_PLOT_BYTES", "read_evaluations", "record_evaluation"]

MAX_PLOT_BYTES = 8 << 20


def record_evaluation(
    stores: Stores,
    version: ModelVersion,
    *,
    dataset: str | None,
    metrics: Mapping[str, Any],
    gate_results: Sequence[GateResult],
    threshold: float | None,
    plots: Mapping[str, str | bytes] | None,
    detail: Mapping[str, Any] | None,
    actor: str,
) -> int:
    """Check and store one evaluation of ``version``; return its id."""
    if not isinstance(metrics, Mapping):
        raise ModelInputError(f"metrics must be a mapping, not {type(metrics).__name__}.")
    metrics_json = json_value(dict(metrics), where="metrics")
    if detail is not None and not isinstance(detail, Mapping):
        raise ModelInputError(f"detail must be a mapping, not {type(detail).__name__}.")
    detail_json = json_value(dict(detail or {}), where="detail")
    results = check_gate_results(gate_results)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ModelInputError(f"threshold must be a number in [0, 1], not {threshold!r}.")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ModelInputError(f"threshold must be in [0, 1], not {threshold}.")
    # A dataset reference (churn_holdout@v1) or what stood for one ("(table)" for an
    # in-memory evaluation set): recorded as given.
    if dataset is not None and (not isinstance(dataset, str) or not 0 < len(dataset) <= 200):
        raise ModelInputError(
            f"dataset must be a reference of 1-200 characters, not {dataset!r:.80}.",
            hint="Pass the dataset version evaluated on, e.g. 'churn_holdout@v1'.",
        )
    plot_blobs = _store_plots(stores, plots)
    metadata = stores.metadata
    with metadata.transaction() as conn:
        result = conn.execute(
            insert(model_evaluations).values(
                name=version.name,
                number=version.number,
                dataset=dataset,
                metrics=metrics_json,
                gate_results=[gate_result_to_dict(r) for r in results],
                threshold=float(threshold) if threshold is not None else None,
                plots=plot_blobs,
                detail=detail_json,
                created_by=actor,
                created_at=datetime.now(UTC),
            )
        )
        key = result.inserted_primary_key
        evaluation_id = int(key[0]) if key is not None else 0
        metadata.add_blob_refs(
            conn,
            [
                BlobRef(blob, "model_evaluation", str(evaluation_id), f"plot:{plot}"[:128])
                for plot, blob in plot_blobs.items()
            ],
        )
        metadata.record_event(
            conn,
            actor,
            "model.evaluate",
            "model",
            version.name,
            {
                "version": version.number,
                "evaluation": evaluation_id,
                "passed": all(r.passed for r in results),
            },
        )
    return evaluation_id


def _store_plots(stores: Stores, plots: object) -> dict[str, str]:
    if plots is None:
        return {}
    if not isinstance(plots, Mapping):
        raise ModelInputError(f"plots must map a name to SVG text, not {type(plots).__name__}.")
    checked: dict[str, bytes] = {}
    for plot, svg in plots.items():
        if not isinstance(plot, str) or not plot or len(plot) > 100:
            raise ModelInputError(f"Plot name {plot!r} must be text of 1-100 characters.")
        data = svg.encode("utf-8") if isinstance(svg, str) else svg
        if not isinstance(data, bytes):
            raise ModelInputError(f"Plot {plot!r} must be SVG text, not {type(svg).__name__}.")
        if len(data) > MAX_PLOT_BYTES:
            raise ModelInputError(
                f"Plot {plot!r} is {len(data):,} bytes; at most {MAX_PLOT_BYTES:,} are stored.",
                hint="Plot fewer points (downsample the curve).",
            )
        checked[plot] = data
    # Checked first, stored after: a bad plot leaves no blob behind.
    return {plot: stores.artifacts.put_bytes(data) for plot, data in checked.items()}


def read_evaluations(
    stores: Stores, version: ModelVersion, *, with_plots: bool = True
) -> list[Evaluation]:
    """Every stored evaluation of ``version``, newest first (plots' SVG text if asked)."""
    with stores.metadata.connect() as conn:
        rows = list(
            conn.execute(
                select(model_evaluations)
                .where(
                    model_evaluations.c.name == version.name,
                    model_evaluations.c.number == version.number,
                )
                .order_by(model_evaluations.c.id.desc())
            ).mappings()
        )
    out = []
    for row in rows:
        plots = (
            {
                plot: stores.artifacts.get_bytes(ContentId(blob)).decode("utf-8", "replace")
                for plot, blob in (row["plots"] or {}).items()
            }
            if with_plots
            else {}
        )
        out.append(catalog.evaluation_from_row(row, plots))
    return out
