"""Autologging: fitting a model records its params, training metrics and the model itself.

``autolog()`` patches the ``fit`` methods of scikit-learn's estimators and, when they are
installed, LightGBM's and XGBoost's (``lightgbm.train``, ``xgboost.train`` and their
scikit-learn estimators). A patched fit logs into the active run; with no active run it
starts one and ends it when the fit returns (``failed`` if the fit raised). A second
autologged fit inside the same user run gets a nested run, so params never collide.

What one fit records:

- params: ``get_params(deep=True)`` stringified (values over 500 characters are cut, with
  a note saying so); for ``lightgbm.train``/``xgboost.train`` the params dict and
  ``num_boost_round``; a search (``GridSearchCV``...) adds ``best_<param>`` and
  ``best_cv_score``;
- training metrics, computed on the training data: classifiers ``training_accuracy``,
  ``training_precision``/``recall``/``f1`` (weighted), ``training_log_loss`` and
  ``training_roc_auc`` when ``predict_proba`` exists; regressors ``training_mse``,
  ``training_rmse``, ``training_mae``, ``training_r2``; and ``fit_duration_seconds``;
- boosters: every evaluation metric at every iteration (``valid_0-binary_logloss`` at
  step = iteration), through a callback added to the user's;
- the fitted model (``log_models=True``), under ``model/`` through ``log_model``, in
  Shipyard's safe formats.

Only the outermost fit is logged: a ``Pipeline`` fitting its steps or a ``GridSearchCV``
fitting hundreds of candidates logs once (a ``contextvars`` guard). ``n_jobs`` with
joblib's default process backend is fine (the workers are not patched); under
``joblib.parallel_backend("threading")`` the worker threads do not inherit the guard, so
each inner fit there gets a run of its own. A user subclass keeps working: its own
``fit`` is left alone and the patched parent ``fit`` it calls through ``super()`` does
the logging. Autolog never breaks a fit:
any failure of its own logging becomes a WARNING on the ``shipyard.tracking.autolog``
logger and the fit's result is returned as usual.

Example::

    import shipyard.tracking.autolog as autolog

    autolog.autolog()
    pipeline.fit(X_train, y_train)      # a run with params, training metrics and model/
    autolog.autolog(disable=True)       # the original fit methods are back
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from shipyard.formats.base import class_path, is_importable
from shipyard.tracking import fluent

__all__ = ["autolog", "is_enabled"]

logger = logging.getLogger("shipyard.tracking.autolog")

MAX_PARAM_CHARS = 500
_FIT_METHODS = ("fit", "fit_transform", "fit_predict")

_in_fit: ContextVar[bool] = ContextVar("shipyard_autolog_in_fit", default=False)
_lock = threading.Lock()


@dataclass
class _Patch:
    owner: Any
    name: str
    original: Any


@dataclass
class _Settings:
    log_models: bool = True
    patches: list[_Patch] = field(default_factory=list)
    runs_logged: OrderedDict[str, None] = field(default_factory=OrderedDict)
    """Runs an autologged fit already logged into (bounded): the next fit nests."""


_settings = _Settings()


def autolog(
    *,
    sklearn: bool = True,
    lightgbm: bool = True,
    xgboost: bool = True,
    log_models: bool = True,
    disable: bool = False,
) -> None:
    """Turn autologging on (again, with these options) or off (``disable=True``).

    Idempotent: a second call replaces the first one's patches. A library is patched
    only if it is importable. Enabling scikit-learn imports all of its estimators, once
    per process (one to a few seconds).

    >>> autolog(log_models=False)  # doctest: +SKIP
    >>> LogisticRegression().fit(X, y)  # doctest: +SKIP
    """
    with _lock:
        _remove_patches()
        if disable:
            return
        _settings.log_models = log_models
        try:
            if sklearn and is_importable("sklearn"):
                _patch_sklearn()
            if lightgbm and is_importable("lightgbm"):
                _patch_lightgbm()
            if xgboost and is_importable("xgboost"):
                _patch_xgboost()
        except BaseException:
            _remove_patches()
            raise


def is_enabled() -> bool:
    """Whether any autolog patch is installed."""
    return bool(_settings.patches)


# --- patching ----------------------------------------------------------------------------


def _install(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    wrapper = make(original)
    wrapper.__shipyard_autolog__ = True
    setattr(owner, name, wrapper)
    _settings.patches.append(_Patch(owner, name, original))


def _remove_patches() -> None:
    while _settings.patches:
        patch = _settings.patches.pop()
        setattr(patch.owner, patch.name, patch.original)


def _patch_fit_methods(classes: list[type], library: str) -> None:
    """Wrap the fit methods each class defines itself (inherited ones are wrapped once)."""
    done: set[tuple[type, str]] = set()
    for cls in classes:
        for name in _FIT_METHODS:
            function = cls.__dict__.get(name)
            if inspect.isfunction(function) and (cls, name) not in done:
                done.add((cls, name))
                _install(cls, name, functools.partial(_estimator_fit, library=library))


def _patch_sklearn() -> None:
    from sklearn.utils import all_estimators

    classes: dict[type, None] = {}
    for _, estimator in all_estimators():
        for cls in estimator.__mro__:
            if cls.__module__.startswith("sklearn."):
                classes[cls] = None
    _patch_fit_methods(list(classes), "sklearn")


def _patch_lightgbm() -> None:
    import lightgbm
    from lightgbm import engine
    from lightgbm import sklearn as lgb_sklearn

    classes = [
        cls
        for cls in vars(lgb_sklearn).values()
        if isinstance(cls, type) and issubclass(cls, lgb_sklearn.LGBMModel)
    ]
    _patch_fit_methods(classes, "lightgbm")
    for module in (lightgbm, engine):
        _install(module, "train", functools.partial(_train_function, library="lightgbm"))


def _patch_xgboost() -> None:
    import xgboost
    from xgboost import sklearn as xgb_sklearn
    from xgboost import training

    classes = [
        cls
        for cls in vars(xgb_sklearn).values()
        if isinstance(cls, type) and issubclass(cls, xgb_sklearn.XGBModel)
    ]
    _patch_fit_methods(classes, "xgboost")
    for module in (xgboost, training):
        _install(module, "train", functools.partial(_train_function, library="xgboost"))


# --- the wrappers ------------------------------------------------------------------------


def _estimator_fit(original: Callable[..., Any], *, library: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _in_fit.get():
            return original(self, *args, **kwargs)
        token = _in_fit.set(True)
        try:
            with _session(library, type(self)) as session:
                if session is None:
                    return original(self, *args, **kwargs)
                return _logged_estimator_fit(session, original, self, args, kwargs)
        finally:
            _in_fit.reset(token)

    return fit


def _train_function(original: Callable[..., Any], *, library: str) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        if _in_fit.get():
            return original(*args, **kwargs)
        token = _in_fit.set(True)
        try:
            with _session(library, None) as session:
                if session is None:
                    return original(*args, **kwargs)
                try:
                    bound = signature.bind(*args, **kwargs)
                except TypeError:  # arguments train itself will refuse, in its own words
                    return original(*args, **kwargs)
                session.safely("params", _log_train_params, signature, bound.arguments)
                session.safely("the metric callback", _add_callback, session, library, bound)
                started = time.perf_counter()
                booster = original(*bound.args, **bound.kwargs)
                session.safely("the fit duration", _log_duration, started)
                session.safely("the best iteration", _log_best_iteration, booster)
                if _settings.log_models:
                    session.safely("the model", fluent.log_model, booster, "model")
                return booster
        finally:
            _in_fit.reset(token)

    return train


def _logged_estimator_fit(
    session: _Session, original: Callable[..., Any], estimator: Any, args: Any, kwargs: Any
) -> Any:
    try:
        signature = inspect.signature(original)
        bound = signature.bind(estimator, *args, **kwargs)
    except (TypeError, ValueError):  # arguments the fit itself will refuse, in its own words
        return original(estimator, *args, **kwargs)
    session.safely("params", _log_estimator_params, estimator)
    restore: Callable[[], None] = _nothing
    if session.library == "lightgbm" and "callbacks" in signature.parameters:
        session.safely("the metric callback", _add_callback, session, "lightgbm", bound)
    elif session.library == "xgboost":
        undo = session.safely("the metric callback", _add_xgboost_callback, session, estimator)
        restore = undo if callable(undo) else _nothing
    started = time.perf_counter()
    try:
        result = original(*bound.args, **bound.kwargs)
    finally:
        restore()
    session.safely("the fit duration", _log_duration, started)
    session.safely("training metrics", _log_training_metrics, estimator, signature, bound)
    session.safely("search results", _log_search_results, estimator)
    if _settings.log_models:
        session.safely("the model", fluent.log_model, estimator, "model")
    return result


def _nothing() -> None:
    return None


# --- the run a fit logs into -------------------------------------------------------------


@dataclass
class _Session:
    """One outermost fit being logged."""

    library: str
    what: str
    started_run: bool
    warned: set[str] = field(default_factory=set)

    def safely(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        """Call ``function``; on failure warn (once per ``what``) and return None."""
        try:
            return function(*args)
        except Exception as exc:  # noqa: BLE001 - autolog must never break the user's fit
            if what not in self.warned:
                self.warned.add(what)
                logger.warning(
                    "Shipyard autolog could not log %s of %s: %s: %s. The fit goes on.",
                    what,
                    self.what,
                    type(exc).__name__,
                    exc,
                )
            return None


@contextmanager
def _session(library: str, cls: type | None) -> Iterator[_Session | None]:
    """The run this fit logs into: the active one, a nested one, or a new one.

    Yields None (the fit then runs unlogged) if no run can be started. A run it started
    is ended as a ``with start_run()`` block would end it: ``failed`` with the error if
    the fit raised.
    """
    what = class_path(cls) if cls is not None else f"{library}.train"
    name = cls.__name__ if cls is not None else f"{library}-train"
    try:
        run, started = _run_for_fit(name)
    except Exception as exc:  # noqa: BLE001 - autolog must never break the user's fit
        logger.warning(
            "Shipyard autolog could not start a run for %s: %s: %s. The fit runs unlogged.",
            what,
            type(exc).__name__,
            exc,
        )
        run = None
    if run is None:
        yield None
        return
    session = _Session(library=library, what=what, started_run=started)
    session.safely("tags", fluent.set_tags, {"shipyard.autolog": library, "estimator": what})
    try:
        yield session
    except BaseException as exc:
        if started:  # records the status and the error; never hides the user's exception
            run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if started:
        session.safely("the run's end", run.__exit__, None, None, None)


def _run_for_fit(name: str) -> tuple[Any, bool]:
    """``(run, started_here)``: the active run, or a new (nested) one."""
    current = fluent.active_run()
    if current is None:
        run = fluent.start_run(name)
    elif current.id in _settings.runs_logged:
        run = fluent.start_run(name, nested=True)
    else:
        run = current
    _settings.runs_logged[run.id] = None
    while len(_settings.runs_logged) > 1000:
        _settings.runs_logged.popitem(last=False)
    return run, run is not current


# --- what gets logged --------------------------------------------------------------------


def _stringify(value: Any) -> str:
    text = value.__name__ if inspect.isfunction(value) or inspect.isclass(value) else str(value)
    if len(text) > MAX_PARAM_CHARS:
        cut = len(text) - MAX_PARAM_CHARS
        text = f"{text[:MAX_PARAM_CHARS]}... [truncated by autolog: {cut} more characters]"
    return text


def _log_estimator_params(estimator: Any) -> None:
    params = estimator.get_params(deep=True)
    fluent.log_params({key: _stringify(value) for key, value in sorted(params.items())})


def _log_train_params(signature: inspect.Signature, arguments: Mapping[str, Any]) -> None:
    params = arguments.get("params") or {}
    pairs = params.items() if isinstance(params, Mapping) else params  # xgboost: list of pairs
    logged = {str(key): _stringify(value) for key, value in pairs}
    rounds = arguments.get("num_boost_round", signature.parameters["num_boost_round"].default)
    logged["num_boost_round"] = _stringify(rounds)
    fluent.log_params(logged)


def _log_duration(started: float) -> None:
    fluent.log_metric("fit_duration_seconds", time.perf_counter() - started)


def _log_best_iteration(booster: Any) -> None:
    best = getattr(booster, "best_iteration", None)
    if isinstance(best, int) and best > 0:
        fluent.log_metric("best_iteration", best)


def _log_search_results(estimator: Any) -> None:
    best_params = getattr(estimator, "best_params_", None)
    if isinstance(best_params, Mapping):
        fluent.log_params({f"best_{k}": _stringify(v) for k, v in sorted(best_params.items())})
        score = getattr(estimator, "best_score_", None)
        if isinstance(score, int | float) and math.isfinite(score):
            fluent.log_metric("best_cv_score", float(score))


def _training_data(signature: inspect.Signature, bound: inspect.BoundArguments) -> Any:
    """``(X, y, sample_weight)`` of a fit call, by the fit's own parameter names."""
    arguments = bound.arguments
    names = [n for n, p in signature.parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    X = arguments.get(names[1]) if len(names) > 1 else None  # names[0] is self
    y = arguments.get("y", arguments.get("Y"))
    extra = bound.kwargs  # **fit_params land here
    sample_weight = arguments.get("sample_weight", extra.get("sample_weight"))
    return X, y, sample_weight


def _log_training_metrics(
    estimator: Any, signature: inspect.Signature, bound: inspect.BoundArguments
) -> None:
    from sklearn.base import is_classifier, is_regressor

    X, y, sample_weight = _training_data(signature, bound)
    if X is None or y is None:
        return
    if is_classifier(estimator):
        metrics = _classifier_metrics(estimator, X, y, sample_weight)
    elif is_regressor(estimator):
        metrics = _regressor_metrics(estimator, X, y, sample_weight)
    else:
        return
    if metrics:
        fluent.log_metrics(metrics)


def _classifier_metrics(estimator: Any, X: Any, y: Any, weights: Any) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    predicted = estimator.predict(X)
    scores = {
        "training_accuracy": lambda: m.accuracy_score(y, predicted, sample_weight=weights),
        "training_precision": lambda: m.precision_score(
            y, predicted, average="weighted", zero_division=0, sample_weight=weights
        ),
        "training_recall": lambda: m.recall_score(
            y, predicted, average="weighted", zero_division=0, sample_weight=weights
        ),
        "training_f1": lambda: m.f1_score(
            y, predicted, average="weighted", zero_division=0, sample_weight=weights
        ),
    }
    if hasattr(estimator, "predict_proba"):
        probabilities = np.asarray(estimator.predict_proba(X))
        classes = np.asarray(estimator.classes_)
        scores["training_log_loss"] = lambda: m.log_loss(
            y, probabilities, labels=classes, sample_weight=weights
        )
        if probabilities.ndim == 2 and probabilities.shape[1] == 2:
            positive = np.asarray(y) == classes[1]
            scores["training_roc_auc"] = lambda: m.roc_auc_score(
                positive, probabilities[:, 1], sample_weight=weights
            )
        else:
            scores["training_roc_auc"] = lambda: m.roc_auc_score(
                y, probabilities, multi_class="ovr", labels=classes, sample_weight=weights
            )
    return _computed(scores)


def _regressor_metrics(estimator: Any, X: Any, y: Any, weights: Any) -> dict[str, float]:
    from sklearn import metrics as m

    predicted = estimator.predict(X)
    mse = float(m.mean_squared_error(y, predicted, sample_weight=weights))
    scores = {
        "training_mse": lambda: mse,
        "training_rmse": lambda: math.sqrt(mse),
        "training_mae": lambda: m.mean_absolute_error(y, predicted, sample_weight=weights),
        "training_r2": lambda: m.r2_score(y, predicted, sample_weight=weights),
    }
    return _computed(scores)


def _computed(scores: Mapping[str, Callable[[], Any]]) -> dict[str, float]:
    """Each metric that can be computed; one that cannot (a label unseen...) is skipped."""
    values = {}
    for name, compute in scores.items():
        try:
            values[name] = float(compute())
        except Exception as exc:  # noqa: BLE001 - one metric failing must not stop the rest
            logger.debug("autolog skipped %s: %s", name, exc)
    return values


# --- per-iteration metrics of the boosters -----------------------------------------------


def _add_callback(session: _Session, library: str, bound: inspect.BoundArguments) -> None:
    callback = _lightgbm_callback(session) if library == "lightgbm" else _xgboost_callback(session)
    bound.arguments["callbacks"] = [*(bound.arguments.get("callbacks") or []), callback]


def _add_xgboost_callback(session: _Session, estimator: Any) -> Callable[[], None]:
    """Add the callback to an XGBoost estimator for this fit; returns the undo."""
    from xgboost import sklearn as xgb_sklearn

    if isinstance(estimator, xgb_sklearn.XGBRFClassifier | xgb_sklearn.XGBRFRegressor):
        return _nothing  # random forests refuse callbacks
    before = estimator.callbacks
    estimator.callbacks = [*(before or []), _xgboost_callback(session)]

    def restore() -> None:
        estimator.callbacks = before

    return restore


def _log_lightgbm_iteration(env: Any) -> None:
    # (dataset, metric, value, higher_is_better[, stdv]) per evaluation
    values = {f"{item[0]}-{item[1]}": float(item[2]) for item in env.evaluation_result_list or ()}
    if values:
        fluent.log_metrics(values, step=int(env.iteration))


def _log_xgboost_iteration(evals_log: Mapping[str, Mapping[str, Any]], epoch: int) -> None:
    values = {}
    for data, metrics in evals_log.items():
        for metric, history in metrics.items():
            latest = history[-1]  # xgboost.cv keeps (mean, std) pairs
            values[f"{data}-{metric}"] = float(latest[0] if isinstance(latest, tuple) else latest)
    if values:
        fluent.log_metrics(values, step=int(epoch))


def _lightgbm_callback(session: _Session) -> Callable[[Any], None]:
    def record_iteration(env: Any) -> None:
        session.safely("per-iteration metrics", _log_lightgbm_iteration, env)

    record_iteration.order = 40  # type: ignore[attr-defined]  # after LightGBM's own
    return record_iteration


def _xgboost_callback(session: _Session) -> Any:
    from xgboost.callback import TrainingCallback

    class RecordIteration(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            session.safely("per-iteration metrics", _log_xgboost_iteration, evals_log, epoch)
            return False  # never asks XGBoost to stop

    return RecordIteration()
