"""Gates declared in ``shipyard.toml``: one ``[gates.MODEL]`` table per model.

::

    [gates.churn]
    metrics = { roc_auc = ">= 0.80", log_loss = "<= 0.45" }
    recall_at_precision = { precision = 0.80, min_recall = 0.60 }
    champion = { metric = "roc_auc", max_drop = 0.01 }
    latency = { p99_ms = 200 }
    fairness = { metric = "recall", by = "Gender", max_gap = 0.10 }  # or a list of tables
    robustness = true                     # or { probes = ["missing_values", ...] }

Every key and value is checked; a typo or a wrong type is a ``ConfigError`` naming the
key (``[gates.churn] latency.p99_ms``) and what to write instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shipyard.core.config import Config
from shipyard.core.errors import ConfigError
from shipyard.evaluation import gates as g

__all__ = ["GATE_KEYS", "gates_from_config", "parse_gates"]

_BOUND = re.compile(r"\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")

GATE_KEYS: dict[str, tuple[str, ...]] = {
    "metrics": (),
    "recall_at_precision": ("precision", "min_recall"),
    "precision_at_recall": ("recall", "min_precision"),
    "champion": ("metric", "max_drop", "alias"),
    "latency": ("p99_ms", "samples", "max_seconds"),
    "fairness": ("metric", "by", "max_gap", "min_rows", "bins"),
    "robustness": ("probes", "control_rows"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "recall_at_precision": ("precision", "min_recall"),
    "precision_at_recall": ("recall", "min_precision"),
    "champion": ("metric",),
    "latency": ("p99_ms",),
    "fairness": ("metric", "by", "max_gap"),
}


def _unknown(key: str, known: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    return ConfigError(
        f"{where}: unknown key {key!r}.",
        hint=(f"Did you mean {close[0]!r}? " if close else "") + f"Keys: {', '.join(known)}.",
    )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where} must be a table (e.g. {{ key = value }}), not {type(value).__name__} "
            f"{value!r}."
        )
    return value


def _arguments(kind: str, value: Any, where: str) -> dict[str, Any]:
    table = _table(value, where)
    for key in table:
        if key not in GATE_KEYS[kind]:
            raise _unknown(str(key), GATE_KEYS[kind], where)
    missing = [key for key in _REQUIRED.get(kind, ()) if key not in table]
    if missing:
        raise ConfigError(
            f"{where}: missing {', '.join(repr(k) for k in missing)}.",
            hint=f"Write e.g. {kind} = {{ {', '.join(f'{k} = ...' for k in _REQUIRED[kind])} }}.",
        )
    return dict(table)


def _metrics(value: Any, where: str) -> list[g.Gate]:
    parsed: list[g.Gate] = []
    for name, bound in _table(value, where).items():
        key = f"{where}.{name}"
        if not isinstance(bound, str) or not (match := _BOUND.fullmatch(bound)):
            raise ConfigError(
                f'{key} must be a string such as ">= 0.6", not {bound!r}.',
                hint="Write an operator (>=, >, <=, <) and a number.",
            )
        parsed.append(g.metric(str(name), match.group(1), float(match.group(2)), where=key))
    return parsed


def _one_or_many(value: Any, where: str) -> list[tuple[Any, str]]:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where} is an empty list; remove it or add a table.")
        return [(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return [(value, where)]


def _builders(prefix: str) -> dict[str, Callable[[Any, str], list[g.Gate]]]:
    def recall_at(value: Any, where: str) -> list[g.Gate]:
        args = _arguments("recall_at_precision", value, where)
        return [
            g.recall_at_precision(args["precision"], min_recall=args["min_recall"], where=where)
        ]

    def precision_at(value: Any, where: str) -> list[g.Gate]:
        args = _arguments("precision_at_recall", value, where)
        return [
            g.precision_at_recall(args["recall"], min_precision=args["min_precision"], where=where)
        ]

    def champion(value: Any, where: str) -> list[g.Gate]:
        return [
            g.champion(**_arguments("champion", item, at), where=at)
            for item, at in _one_or_many(value, where)
        ]

    def latency(value: Any, where: str) -> list[g.Gate]:
        return [g.latency(**_arguments("latency", value, where), where=where)]

    def fairness(value: Any, where: str) -> list[g.Gate]:
        return [
            g.fairness(**_arguments("fairness", item, at), where=at)
            for item, at in _one_or_many(value, where)
        ]

    def robustness(value: Any, where: str) -> list[g.Gate]:
        if value is False:
            return []
        if value is True:
            return [g.robustness(where=where)]
        args = _arguments("robustness", value, where)
        return [g.robustness(**args, where=where)]

    return {
        "metrics": _metrics,
        "recall_at_precision": recall_at,
        "precision_at_recall": precision_at,
        "champion": champion,
        "latency": latency,
        "fairness": fairness,
        "robustness": robustness,
    }


def parse_gates(model: str, table: Any) -> list[g.Gate]:
    """The gates of ``[gates.MODEL]`` (its raw table), validated, in a stable order."""
    prefix = f"[gates.{model}]"
    spec = _table(table, prefix)
    builders = _builders(prefix)
    gates: list[g.Gate] = []
    for key, value in spec.items():
        if key not in builders:
            raise _unknown(str(key), list(builders), prefix)
        gates.extend(builders[key](value, f"{prefix} {key}"))
    names = [gate.name for gate in gates]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{prefix}: gate {duplicates[0]!r} is declared twice.")
    return gates


def gates_from_config(config: Config, model: str) -> list[g.Gate]:
    """The gates ``shipyard.toml`` declares for ``model``; ``ConfigError`` when there are none."""
    section = config.sections.get("gates") or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[gates] in shipyard.toml must hold one table per model.")
    if model not in section:
        known = ", ".join(sorted(section)) or "none"
        raise ConfigError(
            f"shipyard.toml has no [gates.{model}] table (gates are declared for: {known}).",
            hint=f'Add [gates.{model}] with e.g. metrics = {{ roc_auc = ">= 0.8" }}, or '
            "drop --gates-from-config.",
        )
    return parse_gates(model, section[model])
