"""A closed-loop policy: what retrains a model, when, and what a challenger must pass.

A policy is written in Python at module level in the project's ``pipelines.py``::

    churn_policy = Policy(
        model="churn",
        pipeline="train_churn",
        on=["drift", "performance"],        # or a cron schedule: "0 3 * * 1"
        evaluation_data="churn_holdout",
        label="churn",
        canary=Canary(share=0.1, min_requests=200, max_error_rate=0.01),
    )

or as a table in ``shipyard.toml`` (gates then come from ``[gates.MODEL]``)::

    [policies.churn]
    model = "churn"
    pipeline = "train_churn"
    on = ["drift", "performance"]
    evaluation_data = "churn_holdout"
    label = "churn"
    check_every = "10m"
    window = 1000                         # records, or a duration such as "6h"

    [policies.churn.canary]
    share = 0.1
    min_requests = 200
    max_wait = "24h"

:func:`load_policies` returns both kinds (``shipyard scheduler`` runs them); a bad key
or value raises ``ConfigError`` naming the table and the key. How an episode runs is in
``shipyard.pipelines.closed_loop``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.core.validation import check_number, check_whole
from shipyard.pipelines.canary import Canary

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.pipelines.cron import CronExpression

__all__ = [
    "ALERT_TRIGGERS",
    "Policy",
    "load_policies",
    "policies_from_config",
    "project_policies",
]

ALERT_TRIGGERS: dict[str, tuple[str, ...]] = {
    "drift": ("data_drift", "dataset_drift", "prediction_drift"),
    "performance": ("performance",),
}
"""What each ``on=`` word listens to: the alert kinds of ``shipyard.monitoring.alerts``."""


@dataclass(frozen=True)
class Policy:
    """One closed-loop policy (see the module doc). ``name`` defaults to the model's."""

    model: str
    pipeline: str
    evaluation_data: str
    label: str
    on: Sequence[str] | str = ("drift", "performance")
    gates: Sequence[Any] | Literal["config"] = "config"
    canary: Canary | None = None
    promote: Literal["auto", "manual"] = "auto"
    alias: str = "champion"
    params: Mapping[str, Any] = field(default_factory=dict)
    output: str | None = None
    name: str | None = None
    check_every: timedelta = timedelta(minutes=10)
    window: int | timedelta = 1000
    executor: str = "inprocess"
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        from shipyard.core.errors import ReferenceError_
        from shipyard.core.references import parse_reference, validate_name

        where = f"Policy({self.model!r})"
        for attribute in ("model", "pipeline", "evaluation_data", "label"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{where}: {attribute} must be a non-empty string, not {value!r}."
                )
        try:
            validate_name(self.model, what="model name")
            parse_reference(self.evaluation_data)
        except ReferenceError_ as exc:
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from exc
        if isinstance(self.on, str):
            from shipyard.pipelines.cron import parse_cron

            try:
                parse_cron(self.on)
            except ShipyardError as exc:
                raise ConfigError(
                    f"{where}: on={self.on!r} is neither a list of alert triggers nor a cron "
                    f"schedule: {exc}",
                    hint='Use on=["drift", "performance"] or on="0 3 * * *".',
                ) from exc
        else:
            words = list(self.on) if isinstance(self.on, list | tuple) else None
            if not words or any(word not in ALERT_TRIGGERS for word in words):
                raise ConfigError(
                    f"{where}: on={self.on!r}; expected a non-empty list of "
                    f"{' and '.join(ALERT_TRIGGERS)}, or a cron schedule string.",
                    hint='e.g. on=["drift"] or on="0 3 * * 1".',
                )
        if self.gates != "config":
            from shipyard.evaluation.gates import Gate

            if not isinstance(self.gates, list | tuple) or not all(
                isinstance(g, Gate) for g in self.gates
            ):
                raise ConfigError(
                    f'{where}: gates must be "config" or a list of gates '
                    "(shipyard.evaluation.metric(...), champion(...)...).",
                )
        if self.canary is not None and not isinstance(self.canary, Canary):
            raise ConfigError(f"{where}: canary must be a Canary(...) or None.")
        if self.promote not in ("auto", "manual"):
            raise ConfigError(f"{where}: promote is {self.promote!r}; use auto or manual.")
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"{where}: params must be a mapping of pipeline parameters.")
        if not isinstance(self.check_every, timedelta) or self.check_every <= timedelta(0):
            raise ConfigError(f"{where}: check_every must be a positive timedelta.")
        if isinstance(self.window, bool) or not (
            (isinstance(self.window, int) and self.window >= 1)
            or (isinstance(self.window, timedelta) and self.window > timedelta(0))
        ):
            raise ConfigError(f"{where}: window must be a record count >= 1 or a timedelta.")
        if self.executor not in ("inprocess", "process", "ray"):
            raise ConfigError(
                f"{where}: executor {self.executor!r}; use inprocess, process or ray."
            )

    @property
    def key(self) -> str:
        """The policy's name: ``name``, else the model's."""
        return self.name or self.model

    @property
    def schedule(self) -> CronExpression | None:
        """The cron schedule of ``on="..."``; None for a policy that listens to alerts."""
        if not isinstance(self.on, str):
            return None
        from shipyard.pipelines.cron import parse_cron

        return parse_cron(self.on)

    @property
    def alert_kinds(self) -> tuple[str, ...]:
        """The alert kinds that start an episode (empty for a scheduled policy)."""
        if isinstance(self.on, str):
            return ()
        return tuple(kind for word in self.on for kind in ALERT_TRIGGERS[word])


# --- Policies of a project ---------------------------------------------------------------


def project_policies(project_dir: Any) -> list[Policy]:
    """The policies defined at module level in the project's ``pipelines.py``."""
    from shipyard.pipelines.registry import import_project_pipelines

    module = import_project_pipelines(Path(project_dir))
    if module is None:
        return []
    found = [value for value in vars(module).values() if isinstance(value, Policy)]
    return sorted(found, key=lambda p: p.key)


def load_policies(config: Config) -> list[Policy]:
    """Every policy of the project: ``pipelines.py``'s, then ``[policies.NAME]``'s.

    A name used by both raises ``ConfigError`` naming the two places.
    """
    written = project_policies(config.project_dir)
    configured = policies_from_config(config)
    names = {policy.key for policy in written}
    for policy in configured:
        if policy.key in names:
            raise ConfigError(
                f"Policy {policy.key!r} is defined twice: in {config.project_dir}/pipelines.py "
                f"and in {_file(config)} [policies.{policy.key}].",
                hint="Keep one of the two, or give the Python one another name=.",
            )
    return sorted([*written, *configured], key=lambda p: p.key)


_REQUIRED = ("model", "pipeline", "evaluation_data", "label")
_TEXT = (*_REQUIRED, "alias", "output", "executor", "promote")
_POLICY_KEYS = (
    *_TEXT,
    "on",
    "gates",
    "canary",
    "params",
    "check_every",
    "window",
    "allow_pickle",
)
_CANARY_KEYS = (
    "share",
    "min_requests",
    "max_error_rate",
    "max_p99_ms",
    "metric_vs_champion",
    "max_metric_drop",
    "min_labels",
    "max_wait",
    "sticky_by",
)


def policies_from_config(config: Config) -> list[Policy]:
    """The policies of ``[policies.NAME]`` tables in ``shipyard.toml`` (sorted by name).

    Gates are ``[gates.MODEL]`` (``gates = "config"``, the only value a file can give);
    durations are ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` or seconds.
    """
    section = config.sections.get("policies") or {}
    source = _file(config)
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"{source}: [policies] must hold one table per policy, such as [policies.churn].",
        )
    return [_policy(str(name), table, source) for name, table in sorted(section.items())]


def _policy(name: str, table: Any, source: str) -> Policy:
    where = f"{source} [policies.{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of settings, not {table!r}.")
    unknown = [key for key in table if key not in _POLICY_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}.", hint=f"Keys: {', '.join(_POLICY_KEYS)}."
        )
    missing = [key for key in _REQUIRED if key not in table]
    if missing:
        raise ConfigError(
            f"{where}: missing {missing[0]!r}.",
            hint=f"A policy needs {', '.join(_REQUIRED)}.",
        )
    values: dict[str, Any] = {"name": name}
    for key, value in table.items():
        at = f"{where} {key}"
        if key in _TEXT:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{at} must be a non-empty string, not {value!r}.")
            values[key] = value
        elif key == "on":
            if not isinstance(value, str) and not (
                isinstance(value, list) and all(isinstance(word, str) for word in value)
            ):
                raise ConfigError(
                    f'{at} must be a list such as ["drift", "performance"] or a cron '
                    f'schedule such as "0 3 * * 1", not {value!r}.'
                )
            values[key] = value if isinstance(value, str) else tuple(value)
        elif key == "gates":
            if value != "config":
                raise ConfigError(
                    f"{at} is {value!r}; a policy in shipyard.toml takes its gates from "
                    f'[gates.MODEL] (gates = "config").',
                    hint="Declare the gates under [gates.MODEL], or write the policy in "
                    "pipelines.py with gate objects.",
                )
        elif key == "canary":
            values[key] = _canary(value, f"{source} [policies.{name}.canary]")
        elif key == "params":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{at} must be a table of pipeline parameters, not {value!r}.")
            values[key] = dict(value)
        elif key == "check_every":
            values[key] = _duration(value, at)
        elif key == "window":
            values[key] = (
                _duration(value, at)
                if isinstance(value, str)
                else check_whole(value, where=at, low=1)
            )
        elif key == "allow_pickle":
            if not isinstance(value, bool):
                raise ConfigError(f"{at} must be true or false, not {value!r}.")
            values[key] = value
    try:
        return Policy(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from exc


def _canary(table: Any, where: str) -> Canary:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table such as {{ share = 0.1 }}, not {table!r}.")
    unknown = [key for key in table if key not in _CANARY_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}.", hint=f"Keys: {', '.join(_CANARY_KEYS)}."
        )
    values: dict[str, Any] = dict(table)
    if "share" in values:  # a canary takes some of the traffic, never none or all
        values["share"] = check_number(
            values["share"],
            where=f"{where} share",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
        )
    if "max_error_rate" in values:
        values["max_error_rate"] = check_number(
            values["max_error_rate"], where=f"{where} max_error_rate", low=0.0, high=1.0
        )
    for key in ("max_p99_ms", "max_metric_drop"):
        if key in values:
            values[key] = check_number(values[key], where=f"{where} {key}", low=0.0)
    for key in ("min_requests", "min_labels"):
        if key in values:
            values[key] = check_whole(values[key], where=f"{where} {key}", low=1)
    if "max_wait" in values:
        values["max_wait"] = _duration(values["max_wait"], f"{where} max_wait")
    for key in ("metric_vs_champion", "sticky_by"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"{where} {key} must be a string, not {values[key]!r}.")
    try:
        return Canary(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from exc


def _duration(value: Any, where: str) -> timedelta:
    from shipyard.monitoring.alert_rules import parse_duration

    span = parse_duration(value, where=where)
    if span <= timedelta(0):
        raise ConfigError(f'{where} must be a positive duration such as "10m", not {value!r}.')
    return span


def _file(config: Config) -> str:
    return config.config_file.name if config.config_file is not None else "shipyard.toml"
