"""The alert rules and channels a project configures in ``shipyard.toml``.

::

    [alerts.rules]
    drift = { kind = "data_drift", severity = "warning", cooldown = "6h" }

    [alerts.channels]
    oncall = { type = "webhook", url = "https://hooks.example.com/shipyard" }

:func:`alerts_from_config` parses both tables; ``shipyard monitor check`` and the
closed loop's checks (``shipyard scheduler``) use them. A table left out keeps its
default (``alerts.default_rules()``; a log channel). A bad key or value raises
``ConfigError`` naming the file, the table and the entry.

>>> alerts = alerts_from_config(config)  # doctest: +SKIP
>>> run_check(config, "churn", rules=alerts.rules, channels=alerts.channels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.core.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.monitoring.alert_rules import AlertRule
    from shipyard.monitoring.channels import Channel

__all__ = ["AlertConfig", "alerts_from_config"]

_TABLES = ("rules", "channels")


@dataclass(frozen=True)
class AlertConfig:
    """The configured rules and channels; ``None`` where the file declares none (a check
    then uses its default)."""

    rules: list[AlertRule] | None = None
    channels: list[Channel] | None = None


def alerts_from_config(config: Config) -> AlertConfig:
    """Parse ``[alerts.rules]`` and ``[alerts.channels]`` (see the module doc)."""
    from shipyard.monitoring.alert_rules import parse_rules
    from shipyard.monitoring.channels import parse_channels

    section = config.sections.get("alerts")
    if section is None:
        return AlertConfig()
    source = config.config_file.name if config.config_file is not None else "shipyard.toml"
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"{source}: [alerts] must hold the tables [alerts.rules] and [alerts.channels].",
        )
    unknown = [key for key in section if key not in _TABLES]
    if unknown:
        raise ConfigError(
            f"{source} [alerts]: unknown key {unknown[0]!r}.",
            hint="[alerts] holds two tables: [alerts.rules] and [alerts.channels].",
        )
    rules = (
        parse_rules(section["rules"], where=f"{source} [alerts.rules]")
        if "rules" in section
        else None
    )
    channels = (
        parse_channels(section["channels"], where=f"{source} [alerts.channels]")
        if "channels" in section
        else None
    )
    return AlertConfig(rules, channels)
