"""What the service holds in memory: loaded versions (arms), traffic splits, hot swaps.

An :class:`Arm` is one loaded, warmed model version with its compiled contract and its
micro-batcher. A :class:`Deployment` is an immutable traffic split for one served
reference: the champion arm (the version the alias points at), an optional canary arm
with its share (sticky: a hash of the entity key or the request id picks the arm, so the
same customer always meets the same version), and an optional shadow arm that sees a
copy of the traffic and is only logged.

Hot swap: a :class:`Watcher` thread polls ``registry.serial(name)`` every
``poll_seconds``; when it changed, it reads the alias configuration, loads and warms the
versions it does not hold yet (off the event loop), builds a new Deployment and swaps it
in with one reference assignment. A request reads ``served.deployment`` once, so it
completes on the deployment it started with, and the old versions are freed when their
last request ends: no request fails because of a swap. A version that fails to load is
reported (metrics, log) and the service keeps serving the previous deployment.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shipyard.core.references import Reference, parse_reference
from shipyard.models.loaded import decision_threshold
from shipyard.models.records import AliasConfig, ModelVersion, Signature
from shipyard.serving.batching import MicroBatcher
from shipyard.serving.contract import Contract, sample_record
from shipyard.serving.metrics import Metrics

__all__ = [
    "Arm",
    "Deployment",
    "ModelSource",
    "ServedModel",
    "Watcher",
    "build_deployment",
    "json_safe",
    "limit_native_threads",
]

_log = logging.getLogger("shipyard.serving")
_WARM_CALLS = 2


class Predictor(Protocol):
    """What the registry's ``LoadedModel`` offers serving."""

    @property
    def version(self) -> ModelVersion: ...

    @property
    def signature(self) -> Signature: ...

    def predict(self, rows: Any) -> Any: ...


class ModelSource(Protocol):
    """The part of ``shipyard.models.ModelRegistry`` serving uses."""

    def load(self, reference: str, *, allow_pickle: bool = False) -> Any: ...

    def get(self, reference: str) -> ModelVersion: ...

    def alias_config(self, name: str, alias: str) -> AliasConfig: ...

    def serial(self, name: str) -> int: ...


def json_safe(value: Any) -> Any:
    """A numpy scalar (or anything with ``item()``) as the plain Python value."""
    item = getattr(value, "item", None)
    if item is not None and callable(item):
        return item()
    return value


_threads = threading.local()
_generation = [0]  # bumped whenever a model is loaded (it may bring a new native library)


def limit_native_threads() -> None:
    """One native (OpenMP/BLAS) thread for model calls made from the calling thread.

    A service's model calls are small (one request, a micro-batch): an OpenMP team costs
    more to wake than it saves there, and on a busy machine its spinning threads turn a
    1 ms call into 100 ms and more (measured here with a histogram GBM). Throughput comes
    from micro-batching and worker processes instead. threadpoolctl limits the libraries
    loaded at the time of the call, and OpenMP's setting is per thread, so this runs in
    each scoring thread again after each model load; otherwise it costs one comparison.
    """
    if getattr(_threads, "generation", -1) == _generation[0]:
        return
    _threads.generation = _generation[0]
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # no scikit-learn here, so no OpenMP pool to tame
        return
    threadpool_limits(1)


class Arm:
    """One loaded model version, ready to score: contract, batcher, output shaping."""

    def __init__(
        self,
        model: Predictor,
        *,
        metrics: Metrics,
        budget_seconds: float,
        batching: bool = True,
        optional_inputs: Sequence[str] = (),
        extra_fields: Sequence[Any] = (),
    ) -> None:
        self.model = model
        _generation[0] += 1
        self.version: ModelVersion = model.version
        signature = model.signature
        self.signature = signature
        self.contract = Contract(signature, optional=optional_inputs, extra=extra_fields)
        self.task = signature.task
        classes = signature.classes
        self.classes: tuple[Any, ...] | None = tuple(classes) if classes else None
        # The same rule as LoadedModel's labels (evaluation's, else signature's, else 0.5).
        self.threshold: float | None = decision_threshold(self.version)
        self._metrics = metrics
        self._labels: tuple[str, str] = (self.version.name, "champion")
        self.batcher = MicroBatcher(
            self._predict,
            budget_seconds=budget_seconds,
            enabled=batching,
            observe=self._observe,
        )
        # One request at a time until calibrate() has measured whether batching pays:
        # the service is ready as soon as the model answers, and calibrates right after.
        self.batcher.enabled = False
        self.warmed = False
        self._warm_row: dict[str, Any] = {}

    def _predict(self, rows: list[dict[str, Any]]) -> Any:
        limit_native_threads()
        return self.model.predict(rows)

    def _observe(self, rows: int, seconds: float) -> None:
        self._metrics.predict_seconds.observe(self._labels, seconds)
        self._metrics.batch_rows.observe(self._labels, rows)

    def set_role(self, role: str) -> None:
        self._labels = (self.version.name, role)

    def warm(self) -> None:
        """Score a valid record twice: the first call pays the library's one-time costs
        (lazy imports, caches), the second checks the steady path. Enough to answer."""
        row, errors, _ = self.contract.check(sample_record(self.signature), None)
        if errors:
            row = {}
            for spec in self.signature.inputs:
                row[spec.name] = None
        for _ in range(_WARM_CALLS):
            self._predict([row])
        self._warm_row = row
        self.warmed = True

    def calibrate(self) -> None:
        """Measure whether micro-batching pays for this model (six model calls) and turn
        it on if so; safe while requests are served (the model is only read)."""
        if not self.warmed:
            self.warm()
        if not self.batcher.calibrated:
            self.batcher.calibrate(self._warm_row)

    def outputs(self, prediction: Any, start: int, end: int) -> list[dict[str, Any]]:
        """The answer for rows ``start:end`` of a model call: score, label, threshold."""
        scores = prediction.scores
        out: list[dict[str, Any]] = []
        task = self.task
        classes = self.classes
        threshold = self.threshold
        for index in range(start, end):
            if task == "binary_classification":
                score = float(scores[index])
                negative, positive = classes if classes and len(classes) == 2 else (0, 1)
                label = positive if threshold is not None and score >= threshold else negative
                out.append({"score": score, "label": json_safe(label), "threshold": threshold})
            elif task == "multiclass_classification":
                row = [float(value) for value in scores[index]]
                best = max(range(len(row)), key=row.__getitem__)
                label = classes[best] if classes and best < len(classes) else best
                out.append({"scores": row, "label": json_safe(label), "score": row[best]})
            else:
                value = json_safe(scores[index])
                out.append({"score": float(value) if isinstance(value, int | float) else value})
        return out


@dataclass(frozen=True)
class Deployment:
    """An immutable traffic split of one served reference; swapped whole."""

    champion: Arm
    canary: Arm | None = None
    canary_share: float = 0.0
    sticky_by: str = "entity"
    shadow: Arm | None = None
    serial: int | None = None

    def route(self, entity_key: str | None, request_id: str) -> tuple[str, Arm]:
        """The arm of one record: canary for a stable ``share`` of keys, else champion."""
        canary = self.canary
        if canary is None:
            return "champion", self.champion
        key = entity_key if self.sticky_by == "entity" and entity_key else request_id
        bucket = zlib.crc32(key.encode("utf-8", "surrogatepass")) / 4294967296.0
        if bucket < self.canary_share:
            return "canary", canary
        return "champion", self.champion

    def arms(self) -> list[tuple[str, Arm]]:
        out = [("champion", self.champion)]
        if self.canary is not None:
            out.append(("canary", self.canary))
        if self.shadow is not None:
            out.append(("shadow", self.shadow))
        return out


class ServedModel:
    """One served reference (``churn@champion``) and its current deployment."""

    def __init__(self, reference: str) -> None:
        self.reference: Reference = parse_reference(reference)
        self.name = self.reference.name
        self.alias = self.reference.value if self.reference.kind == "alias" else None
        self.deployment: Deployment | None = None
        self.error: str | None = None


ArmFactory = Callable[[Predictor], Arm]


def build_deployment(
    source: ModelSource,
    served: ServedModel,
    make_arm: ArmFactory,
    *,
    previous: Deployment | None = None,
    allow_pickle: bool = False,
    calibrate: bool = True,
) -> Deployment:
    """Load (or reuse) and warm the versions the reference points at, in a Deployment.

    ``calibrate`` False leaves the batching calibration to the caller (at startup: after
    the service reports ready, see ``server.create_service``).
    """

    def arm_for(reference: str) -> Arm:
        return _arm_for(source, reference, held, make_arm, allow_pickle, calibrate)

    held: dict[str, Arm] = {}
    if previous is not None:
        for _, arm in previous.arms():
            held[arm.version.id] = arm
    name = served.name
    if served.alias is None:
        version = source.get(str(served.reference))
        return Deployment(champion=arm_for(version.reference))
    serial = source.serial(name)
    config = source.alias_config(name, served.alias)
    champion = arm_for(f"{name}@v{config.version}")
    canary = None
    share = 0.0
    sticky_by = "entity"
    if config.canary is not None and config.canary.version != config.version:
        canary = arm_for(f"{name}@v{config.canary.version}")
        share = float(config.canary.share)
        sticky_by = config.canary.sticky_by
    shadow = None
    if config.shadow is not None:
        shadow = arm_for(f"{name}@v{config.shadow}")
    return Deployment(champion, canary, share, sticky_by, shadow, serial)


def _arm_for(
    source: ModelSource,
    reference: str,
    held: dict[str, Arm],
    make_arm: ArmFactory,
    allow_pickle: bool,
    calibrate: bool,
) -> Arm:
    version = source.get(reference)
    arm = held.get(version.id)
    if arm is not None:
        return arm
    arm = make_arm(source.load(version.reference, allow_pickle=allow_pickle))
    arm.warm()
    if calibrate:
        arm.calibrate()
    held[version.id] = arm
    return arm


class Watcher:
    """Polls the registry and hot-swaps deployments whose alias configuration moved."""

    def __init__(
        self,
        source: ModelSource,
        models: Mapping[str, ServedModel],
        make_arm: ArmFactory,
        metrics: Metrics,
        *,
        poll_seconds: float,
        allow_pickle: bool = False,
        on_swap: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self._source = source
        self._models = models
        self._make_arm = make_arm
        self._metrics = metrics
        self.poll_seconds = poll_seconds
        self.allow_pickle = allow_pickle
        self._on_swap = on_swap
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-watcher", daemon=True)
        self.swaps = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        limit_native_threads()
        while not self._stop.wait(self.poll_seconds):
            self.check_once()

    def check_once(self) -> int:
        """Swap every deployment whose serial moved; returns how many were swapped."""
        swapped = 0
        for served in self._models.values():
            current = served.deployment
            if served.alias is None or current is None:
                continue
            try:
                if self._source.serial(served.name) == current.serial:
                    continue
                started = time.perf_counter()
                fresh = build_deployment(
                    self._source,
                    served,
                    self._make_arm,
                    previous=current,
                    allow_pickle=self.allow_pickle,
                )
            except Exception as exc:  # keep serving what we have; say why, retry next poll
                self.failures += 1
                served.error = f"{type(exc).__name__}: {exc}"
                self._metrics.errors.inc((served.name, "swap"))
                _log.error("serving %s: could not load the new version: %s", served.name, exc)
                continue
            served.deployment = fresh  # one reference assignment: atomic for readers
            served.error = None
            swapped += 1
            self.swaps += 1
            self._metrics.swaps.inc((served.name,))
            _log.info(
                "serving %s: now v%d (%.1f s to load and warm)",
                served.reference,
                fresh.champion.version.number,
                time.perf_counter() - started,
            )
            if self._on_swap is not None:
                self._on_swap(served)
        return swapped
