"""``[alerts.rules]`` and ``[alerts.channels]`` of shipyard.toml, and their errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.core.config import Config, load_config
from shipyard.core.errors import ConfigError
from shipyard.monitoring.alert_config import alerts_from_config
from shipyard.monitoring.alert_rules import AlertRule
from shipyard.monitoring.channels import CommandChannel, LogChannel


def _config(tmp_path: Path, toml: str) -> Config:
    (tmp_path / "shipyard.toml").write_text('[project]\nname = "alerts"\n' + toml)
    return load_config(tmp_path, environ={})


def test_rules_and_channels_are_read_and_a_missing_table_keeps_its_default(
    tmp_path: Path,
) -> None:
    assert alerts_from_config(_config(tmp_path, "")).rules is None
    config = _config(
        tmp_path,
        '[alerts.rules]\ndrift = { kind = "data_drift", cooldown = "6h", when = ">= 0.3" }\n'
        '[alerts.channels]\npager = { type = "command", command = ["true"], timeout = 5 }\n'
        'audit = { type = "log", logger = "audit" }\n',
    )
    alerts = alerts_from_config(config)
    assert alerts.rules == [
        AlertRule("drift", kind="data_drift", cooldown=timedelta(hours=6), when=">= 0.3")
    ]
    pager, audit = alerts.channels or []
    assert isinstance(pager, CommandChannel) and pager.timeout == 5.0
    assert isinstance(audit, LogChannel) and audit.name == "audit"
    only_rules = _config(tmp_path, '[alerts.rules]\nperf = { kind = "performance" }\n')
    assert alerts_from_config(only_rules).channels is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[alerts]\nrule = { kind = "x" }\n', r"shipyard.toml \[alerts\]: unknown key 'rule'"),
        (
            '[alerts.rules]\ndrift = { kind = "data_drift", severity = "loud" }\n',
            r"shipyard.toml \[alerts.rules\] drift: .*severity 'loud' is unknown",
        ),
        (
            '[alerts.rules]\ndrift = { kind = "data_drift", cooldown = "soon" }\n',
            r"\[alerts.rules\] drift cooldown is 'soon'",
        ),
        ('[alerts.rules]\ndrift = { severity = "warning" }\n', r"\[alerts.rules\] drift: missing"),
        (
            '[alerts.channels]\nhook = { type = "webhook" }\n',
            r"shipyard.toml \[alerts.channels\] hook: missing 'url'",
        ),
        (
            '[alerts.channels]\nhook = { type = "webhook", url = "ftp://x" }\n',
            r"\[alerts.channels\] hook: Webhook channel 'hook': url 'ftp://x' is not",
        ),
        (
            '[alerts.channels]\npager = { type = "command", command = "x", timeout = -1 }\n',
            r"\[alerts.channels\] pager: Command channel 'pager': timeout must be",
        ),
        ('[alerts.channels]\nsms = { type = "sms" }\n', r"\[alerts.channels\] sms: type 'sms'"),
    ],
)
def test_bad_alert_config_names_the_table_and_entry(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        alerts_from_config(_config(tmp_path, toml))
