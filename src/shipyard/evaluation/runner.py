"""Evaluate a model version on held-out data, run its gates, store the result.

>>> import shipyard.evaluation as sy_eval
>>> report = sy_eval.evaluate(
...     "churn@v3", data="churn_holdout@v1", label="churn",
...     gates=[sy_eval.recall_at_precision(0.8, min_recall=0.6), sy_eval.latency(p99_ms=200)],
... )
>>> report.passed, report.threshold
(True, 0.42)

With a reference (``churn@v3``) the version is loaded from the registry, compared with
its champion, and the evaluation (metrics, threshold, gate results, plots, slices) is
stored on it with ``registry.record_evaluation``, where ``shipyard models promote`` reads
it. A ``Predictor`` (``EstimatorPredictor`` around a plain fitted model, or a
``LoadedModel``) is evaluated the same way, without storing anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import ConfigError, DataContractError, ShipyardError
from shipyard.evaluation import metrics as m
from shipyard.evaluation.data import EvaluationSet, TimeSplit, encode_labels, load_evaluation_set
from shipyard.evaluation.gates import ChampionScores, ChampionUnavailable, Gate, GateContext
from shipyard.evaluation.plots import binary_plots, regression_plots
from shipyard.evaluation.report import EvaluationReport, clean_json
from shipyard.evaluation.slices import slice_labels

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.core.config import Config
    from shipyard.data.client import DatasetClient
    from shipyard.evaluation.scoring import Predictor
    from shipyard.models.records import GateResult, ModelVersion
    from shipyard.models.registry import ModelRegistry

__all__ = ["evaluate"]


def _features(predictor: Predictor, frame: pa.Table, where: str) -> pa.Table:
    names = [spec.name for spec in predictor.signature.inputs]
    missing = [name for name in names if name not in frame.column_names]
    if missing:
        raise DataContractError(
            f"The evaluation data {where} lacks the model's input column(s) "
            f"{', '.join(map(repr, missing[:10]))}.",
            hint="Evaluate on data with every input of the model's signature.",
        )
    return frame.select(names)


def _score(predictor: Predictor, features: pa.Table, who: str) -> np.ndarray[Any, Any]:
    try:
        prediction = predictor.predict(features)
    except ShipyardError:
        raise
    except Exception as exc:
        raise DataContractError(
            f"{who} could not score the evaluation rows: {type(exc).__name__}: {str(exc)[:300]}",
            hint="Check the evaluation data against the model's signature.",
        ) from exc
    scores = np.asarray(prediction.scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) != features.num_rows:
        raise DataContractError(
            f"{who} returned scores of shape {scores.shape} for {features.num_rows} rows; "
            "binary classifiers and regressors give one score per row."
        )
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise DataContractError(
            f"{who} returned {bad} non-finite score(s) on the evaluation rows.",
            hint="The model must answer every valid row with a finite score.",
        )
    return scores


def _slices(context: GateContext, columns: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    names = m.REGRESSION_METRICS if context.task == "regression" else m.BINARY_METRICS
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in columns:
        labels = slice_labels(context.frame, column, where="--slice-by")
        table: dict[str, dict[str, Any]] = {}
        for value in sorted(set(labels.tolist())):
            mask = labels == value
            entry: dict[str, Any] = {"rows": int(mask.sum())}
            if context.task != "regression":
                entry["positives"] = int(context.y[mask].sum())
            for name in names:
                entry[name] = clean_json(context.metric(name, mask))
            table[value] = entry
        out[column] = table
    return out


def _check_gates(gates: Sequence[Gate], task: Any) -> list[Gate]:
    checked: list[Gate] = []
    names: set[str] = set()
    for gate in gates:
        if not isinstance(gate, Gate):
            raise ConfigError(
                f"gates must hold Gate objects (sy_eval.metric(...), sy_eval.latency(...)...), "
                f"not {type(gate).__name__}."
            )
        if gate.name in names:
            raise ConfigError(f"Gate {gate.name!r} is given twice.", hint="Give each gate once.")
        names.add(gate.name)
        gate.check_task(task)
        checked.append(gate)
    # Gates that choose the threshold run first: the others are measured at it.
    return sorted(checked, key=lambda gate: not gate.chooses_threshold)


def _run(
    predictor: Predictor,
    evaluation_set: EvaluationSet,
    *,
    gates: Sequence[Gate],
    slice_by: Sequence[str],
    positive: Any,
    threshold: float | None,
    champion: Any,
    model: str | None,
    version_id: str | None,
) -> EvaluationReport:
    signature = predictor.signature
    labels = encode_labels(evaluation_set.frame, evaluation_set.label, signature, positive=positive)
    ordered = _check_gates(gates, labels.task)
    # Columns the gates and slices read are checked before any (slow) gate runs.
    for gate in ordered:
        gate.check_data(evaluation_set.frame)
    for column in slice_by:
        slice_labels(evaluation_set.frame, column, where="--slice-by")
    features = _features(predictor, evaluation_set.frame, evaluation_set.reference)
    scores = _score(predictor, features, model or "The model")
    binary = labels.task == "binary_classification"
    if binary and (scores.min() < 0 or scores.max() > 1):
        raise DataContractError(
            f"{model or 'The model'} gave scores outside [0, 1]; a binary classifier's score "
            "is the positive class's probability.",
            hint="Register it with task='regression' if it predicts values.",
        )
    context = GateContext(
        predictor=predictor,
        task=labels.task,
        features=features,
        frame=evaluation_set.frame,
        y=labels.y,
        scores=scores,
        threshold=(threshold if threshold is not None else 0.5) if binary else None,
        champion=champion,
    )
    results: list[GateResult] = []
    threshold_from: str | None = None
    for gate in ordered:
        result = gate.evaluate(context)
        chosen = result.detail.get("threshold") if gate.chooses_threshold else None
        if threshold_from is None and isinstance(chosen, float):
            context.threshold, threshold_from = chosen, gate.name
        results.append(result)
    if binary:
        metrics = {name: clean_json(context.metric(name)) for name in m.BINARY_METRICS}
        plots = binary_plots(
            labels.y,
            scores,
            context.threshold or 0.5,
            {k: v for k, v in metrics.items() if isinstance(v, float)},
            labels.class_names or ("0", "1"),
        )
    else:
        metrics = {name: clean_json(context.metric(name)) for name in m.REGRESSION_METRICS}
        plots = regression_plots(labels.y, scores)
    return EvaluationReport(
        model=model,
        version_id=version_id,
        dataset=evaluation_set.reference,
        data_description=evaluation_set.description
        + (f"; threshold chosen by {threshold_from}" if threshold_from else ""),
        task=labels.task,
        rows=evaluation_set.frame.num_rows,
        threshold=context.threshold,
        metrics=metrics,
        gate_results=tuple(results),
        slices=_slices(context, slice_by),
        plots=plots,
        positives=int(labels.y.sum()) if binary else None,
        class_names=labels.class_names,
    )


def _table_set(table: pa.Table, label: str) -> EvaluationSet:
    from shipyard.evaluation.data import drop_unlabelled, missing_column

    if label not in table.column_names:
        raise missing_column(label, table, "Label column", "the evaluation table")
    kept, dropped = drop_unlabelled(table, label)
    if kept.num_rows == 0:
        raise DataContractError(
            f"The evaluation table has no labelled row ({table.num_rows:,} rows).",
            hint="Evaluate on rows that carry a label.",
        )
    return EvaluationSet(
        "(table)", f"an in-memory table ({kept.num_rows:,} labelled rows)", kept, label, dropped
    )


@contextmanager
def _registry(registry: ModelRegistry | None, config: Config | None) -> Iterator[ModelRegistry]:
    if registry is not None:
        yield registry
        return
    from shipyard.models import ModelRegistry

    opened = ModelRegistry.open(config)
    try:
        yield opened
    finally:
        opened.close()


def _champion_finder(
    registry: ModelRegistry,
    version: ModelVersion,
    frame: pa.Table,
    gates: Sequence[Gate],
    allow_pickle: bool,
) -> Any:
    from shipyard.core.errors import NotFoundError

    cache: dict[str, ChampionScores | ChampionUnavailable | str] = {}

    def find(alias: str = "champion") -> ChampionScores | ChampionUnavailable | str:
        if alias in cache:
            return cache[alias]
        try:
            incumbent = registry.get(f"{version.name}@{alias}")
        except NotFoundError:
            cache[alias] = f"{version.name} has no {alias} yet"
            return cache[alias]
        if incumbent.id == version.id:
            cache[alias] = f"this version is the {alias} ({incumbent.reference})"
            return cache[alias]
        who = f"The {alias} {incumbent.reference}"
        try:
            loaded = registry.load(incumbent.reference, allow_pickle=allow_pickle)
            scores = _score(loaded, _features(loaded, frame, f"for {who}"), who)
        except ShipyardError as exc:
            # The comparison cannot be made: the gate fails (closed), saying why.
            cache[alias] = ChampionUnavailable(f"{who} cannot be scored here: {exc}")
            return cache[alias]
        threshold = incumbent.threshold
        if threshold is None:
            threshold = loaded.signature.threshold
        cache[alias] = ChampionScores(
            incumbent.reference, scores, threshold if threshold is not None else 0.5
        )
        return cache[alias]

    aliases = {getattr(gate, "alias", "champion") for gate in gates if gate.kind == "champion"}
    if len(aliases) > 1:
        raise ConfigError("All champion gates of one evaluation must compare with one alias.")
    alias = next(iter(aliases), "champion")
    return lambda: find(alias)


def evaluate(
    model: str | Predictor,
    *,
    data: str | TimeSplit | pa.Table,
    label: str,
    gates: Sequence[Gate] = (),
    slice_by: Sequence[str] = (),
    positive: Any = None,
    registry: ModelRegistry | None = None,
    config: Config | None = None,
    record: bool = True,
    allow_pickle: bool = False,
) -> EvaluationReport:
    """Evaluate ``model`` on ``data`` against ``gates``.

    ``model`` is a registry reference (``churn@v3``) or a ``Predictor``. ``data`` is a
    dataset reference (``churn_holdout@v1``), a ``TimeSplit`` of the newest labelled rows,
    or (for a predictor) a ``pyarrow.Table``. ``label`` names the label column;
    ``positive`` the positive class when the signature records no classes. ``slice_by``
    adds every metric per value of those columns. With a reference and ``record`` True,
    the evaluation is stored on the version (``registry.record_evaluation``).
    ``allow_pickle`` lets versions that run stored Python code load (the registry's rule).
    """
    if isinstance(slice_by, str):
        slice_by = (slice_by,)
    if not isinstance(model, str):
        evaluation_set = _evaluation_set(data, label, config)
        return _run(
            model,
            evaluation_set,
            gates=gates,
            slice_by=slice_by,
            positive=positive,
            threshold=model.signature.threshold,
            champion=None,
            model=None,
            version_id=None,
        )
    with ExitStack() as stack:
        opened = stack.enter_context(_registry(registry, config))
        version = opened.get(model)
        predictor = opened.load(version.reference, allow_pickle=allow_pickle)
        evaluation_set = _evaluation_set(data, label, config, opened.datasets)
        champion = _champion_finder(opened, version, evaluation_set.frame, gates, allow_pickle)
        threshold = version.threshold
        if threshold is None:
            threshold = predictor.signature.threshold
        report = _run(
            predictor,
            evaluation_set,
            gates=gates,
            slice_by=slice_by,
            positive=positive,
            threshold=threshold,
            champion=champion,
            model=version.reference,
            version_id=version.id,
        )
        if record:
            _record(opened, version, report)
            report = _recorded(report)
        return report


def _recorded(report: EvaluationReport) -> EvaluationReport:
    from dataclasses import replace

    return replace(report, recorded=True)


def _record(registry: ModelRegistry, version: ModelVersion, report: EvaluationReport) -> None:
    metrics = {k: v for k, v in report.metrics.items() if v is not None and math.isfinite(v)}
    registry.record_evaluation(
        version.reference,
        dataset=report.dataset,
        metrics=metrics,
        gate_results=report.gate_results,
        threshold=report.threshold,
        plots=dict(report.plots),
        detail=report.detail(),
    )


def _evaluation_set(
    data: Any, label: str, config: Config | None, client: DatasetClient | None = None
) -> EvaluationSet:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return _table_set(data, label)
    if not isinstance(data, str | TimeSplit):
        raise ConfigError(
            f"data must be a dataset reference, a TimeSplit or a pyarrow Table, not "
            f"{type(data).__name__}."
        )
    if client is not None:
        return load_evaluation_set(client, data, label=label)
    from shipyard.data.client import DatasetClient

    with DatasetClient.open(config) as opened:
        return load_evaluation_set(opened, data, label=label)
