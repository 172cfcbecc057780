"""``shipyard monitor``: checks of served models, their history, reports, and labels.

\b
  shipyard monitor check churn [--window 1000 | --last 6h] [--json]   # exit 1 on an alert
  shipyard monitor history [churn] [--limit 50] [--json]              # checks, alerts, loop steps
  shipyard monitor report churn --output report.html [--json-output report.json]
  shipyard monitor labels labels.csv                                  # request_id,label
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from shipyard.cli.output import config_from_context, console, print_json, print_table
from shipyard.cli.serve import labels_command

__all__ = ["monitor_group"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group("monitor")
def monitor_group() -> None:
    """Monitoring: drift and performance checks, alerts, the closed loop's history."""


monitor_group.add_command(labels_command)


def _window(window: int | None, last: str | None) -> int | timedelta:
    from shipyard.core.errors import ConfigError
    from shipyard.monitoring.alerts import parse_duration
    from shipyard.monitoring.monitor import DEFAULT_WINDOW

    if window is not None and last is not None:
        raise ConfigError("Give --window (records) or --last (a duration), not both.")
    if last is not None:
        span = parse_duration(last, where="--last")
        if span <= timedelta(0):
            raise ConfigError("--last must be a positive duration such as 6h.")
        return span
    return DEFAULT_WINDOW if window is None else window


@monitor_group.command("check")
@click.argument("model")
@click.option("--window", type=int, default=None, help="The newest N records (default 1000).")
@click.option("--last", default=None, help="The records of the last duration (90s, 15m, 6h, 1d).")
@click.option("--arm", default="champion", help="champion, canary or shadow.")
@click.option("--min-rows", type=int, default=30, help="Fewest records a check judges.")
@click.option("--allow-pickle", is_flag=True, help="Load versions that run stored Python code.")
@_JSON
@click.pass_context
def check_command(
    ctx: click.Context,
    model: str,
    window: int | None,
    last: str | None,
    arm: str,
    min_rows: int,
    allow_pickle: bool,
    as_json: bool,
) -> None:
    """Run one monitoring check of MODEL now (exit code 1 when it alerts).

    Alerts follow [alerts.rules] and go to [alerts.channels] of shipyard.toml (the
    default rules and a log channel where a table is left out).
    """
    from shipyard.monitoring.alert_config import alerts_from_config
    from shipyard.monitoring.monitor import run_check

    config = config_from_context(ctx)
    alerts = alerts_from_config(config)
    check = run_check(
        config,
        model,
        window=_window(window, last),
        arm=arm,
        rules=alerts.rules,
        channels=alerts.channels,
        min_rows=min_rows,
        allow_pickle=allow_pickle,
    )
    if as_json:
        document = check.to_dict()
        document.pop("drift", None)
        document.pop("performance", None)
        print_json(document)
    else:
        out = console()
        verdict = "ALERT" if check.alert else "ok"
        out.print(
            f"check {check.id}: {check.model}@v{check.version} vs {check.reference}, "
            f"{check.window} ({check.rows:,} records): {verdict}"
        )
        for severity, finding in check.breaches:
            out.print(f"  [{severity}] {finding.message}")
        for note in check.notes:
            out.print(f"  note: {note}")
    if check.alert:
        ctx.exit(1)


@monitor_group.command("history")
@click.argument("model", required=False)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@_JSON
@click.pass_context
def history_command(ctx: click.Context, model: str | None, limit: int, as_json: bool) -> None:
    """Every check, alert and closed-loop step, newest first."""
    from shipyard.models.registry import ModelRegistry
    from shipyard.monitoring.alerts import AlertManager
    from shipyard.monitoring.monitor import check_history
    from shipyard.pipelines.closed_loop import loop_history

    with ModelRegistry.open(config_from_context(ctx)) as registry:
        metadata = registry.stores.metadata
        checks = check_history(metadata, model=model, limit=limit)
        alerts = AlertManager(metadata, []).alerts(model=model, limit=limit)
        runs = loop_history(registry, model=model, limit=limit)
    entries: list[dict[str, Any]] = [
        {
            "at": check["created_at"],
            "kind": "check",
            "model": check["model"],
            "what": f"check {check['id']} of v{check['version']} ({check['window']}, "
            f"{check['rows']} records): "
            + ("ALERT" if check["alert"] else "ok")
            + (f" drifted {', '.join(check['drifted'][:6])}" if check["drifted"] else ""),
            "who": check["actor"],
        }
        for check in checks
    ]
    entries.extend(
        {
            "at": alert.first_seen,
            "kind": "alert",
            "model": alert.model,
            "what": f"alert {alert.id} [{alert.severity}, {alert.status}, seen "
            f"{alert.count}x] {alert.message}",
            "who": alert.rule,
        }
        for alert in alerts
    )
    entries.extend(
        {
            "at": event["at"],
            "kind": f"loop {run.id}",
            "model": run.model,
            "what": f"{event['step']} ({event['outcome']}): {event['message']}",
            "who": event["actor"],
            "figures": event["figures"],
        }
        for run in runs
        for event in run.events
    )
    entries.sort(key=lambda e: e["at"], reverse=True)
    if as_json:
        print_json({"history": entries})
        return
    if not entries:
        console().print("No checks, alerts or closed-loop steps recorded yet.")
        return
    print_table(
        None,
        ["when", "kind", "model", "what", "who"],
        [
            [f"{e['at']:%Y-%m-%d %H:%M:%S}", e["kind"], e["model"], e["what"], e["who"]]
            for e in entries
        ],
    )


@monitor_group.command("report")
@click.argument("model")
@click.option(
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=Path("monitor.html"),
    show_default=True,
    help="The HTML report.",
)
@click.option(
    "--json-output",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report's data as JSON.",
)
@click.option(
    "--checks",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Stored checks drawn over time.",
)
@click.option(
    "--every", default="1d", show_default=True, help="Performance window length (90s, 15m, 6h, 1d)."
)
@click.pass_context
def report_command(
    ctx: click.Context,
    model: str,
    output: Path,
    json_output: Path | None,
    checks: int,
    every: str,
) -> None:
    """Write an HTML report of MODEL: distributions, drift and performance over time."""
    import json

    from shipyard.core.errors import DataContractError
    from shipyard.models.registry import ModelRegistry
    from shipyard.monitoring.alerts import parse_duration
    from shipyard.monitoring.drift_report import DriftReport, _write
    from shipyard.monitoring.monitor import check_history, resolve_served
    from shipyard.monitoring.monitor_html import render_monitor_report
    from shipyard.monitoring.performance import performance_window

    span = parse_duration(every, where="--every")
    with ModelRegistry.open(config_from_context(ctx)) as registry:
        version = resolve_served(registry, model)
        stored = check_history(
            registry.stores.metadata, model=version.name, limit=checks, with_documents=True
        )
        performance = None
        if version.signature.task in ("binary_classification", "regression"):
            performance = performance_window(
                registry, version.reference, window=span if span.total_seconds() > 0 else None
            ).to_dict()
    if not stored:
        raise DataContractError(
            f"No check of {version.name} is stored; the report draws stored checks.",
            hint=f"Run `shipyard monitor check {version.name}` first.",
        )
    stored.reverse()
    newest = next((c for c in reversed(stored) if c.get("drift")), None)
    drift_html = DriftReport.from_dict(newest["drift"]).to_html() if newest else None
    page = render_monitor_report(version.name, stored, performance, drift_html)
    _write(output, page)
    if json_output is not None:
        document = {
            "format": "shipyard.monitor_report.v1",
            "model": version.name,
            "version": version.number,
            "checks": stored,
            "performance": performance,
        }
        _write(json_output, json.dumps(document, indent=2, default=str, allow_nan=False))
    console().print(f"Wrote {output}" + (f" and {json_output}" if json_output else "") + ".")
