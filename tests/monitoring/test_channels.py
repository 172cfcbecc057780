"""Alert channels against real receivers: a local HTTP server, real commands, the log."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.errors import ConfigError
from shipyard.monitoring.alerts import AlertManager, AlertRule, Finding
from shipyard.monitoring.channels import (
    Channel,
    CommandChannel,
    LogChannel,
    WebhookChannel,
    dispatch,
    parse_channels,
)
from shipyard.store.metadata import MetadataStore, open_metadata_store
from tests.conftest import free_port


class Receiver:
    """A webhook receiver on 127.0.0.1: answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[Mapping[str, str]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"nope" if status >= 400 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    yield store
    store.close()


@pytest.fixture
def alert(metadata: MetadataStore) -> Any:
    manager = AlertManager(metadata, [AlertRule("perf", kind="performance", severity="critical")])
    finding = Finding(
        "performance", "churn", "recall", True, "recall 0.41 < 0.60", value=0.41, bound=">= 0.6"
    )
    (fired,) = manager.evaluate([finding], now=datetime(2026, 11, 1, tzinfo=UTC))
    return fired


def test_webhook_posts_the_alert_json(receiver: Receiver, alert: Any) -> None:
    hook = WebhookChannel(receiver.url, headers={"Authorization": "Bearer t0k"})
    (delivery,) = dispatch(alert, [hook])
    assert (delivery.ok, delivery.attempts, delivery.error) == (True, 1, None)
    body = receiver.bodies[0]
    assert body["format"] == "shipyard.alert.v1"
    assert (body["id"], body["severity"], body["subject"], body["value"]) == (
        alert.id,
        "critical",
        "recall",
        0.41,
    )
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert receiver.headers[0]["Authorization"] == "Bearer t0k"


def test_webhook_retries_server_errors_not_client_errors(receiver: Receiver, alert: Any) -> None:
    receiver.statuses = [503, 500]
    hook = WebhookChannel(receiver.url, retries=2, backoff=0.01)
    (delivery,) = dispatch(alert, [hook])
    assert (delivery.ok, delivery.attempts) == (True, 3)
    assert len(receiver.bodies) == 3
    receiver.statuses = [500, 500, 500]
    (delivery,) = dispatch(alert, [hook])
    assert not delivery.ok and delivery.attempts == 3
    assert "HTTP 500" in (delivery.error or "") and "after 3 attempts" in (delivery.error or "")
    receiver.statuses = [400]
    before = len(receiver.bodies)
    (delivery,) = dispatch(alert, [hook])
    assert (delivery.ok, delivery.attempts, len(receiver.bodies) - before) == (False, 1, 1)
    assert "HTTP 400" in (delivery.error or "") and "nope" in (delivery.error or "")


def test_webhook_timeout_and_unreachable_are_failures_not_crashes(
    receiver: Receiver, alert: Any
) -> None:
    receiver.delay = 1.0
    started = time.monotonic()
    (slow,) = dispatch(alert, [WebhookChannel(receiver.url, timeout=0.2, retries=1, backoff=0)])
    assert not slow.ok and slow.attempts == 2
    assert time.monotonic() - started < 3
    closed = f"http://127.0.0.1:{free_port()}/hook"
    (refused,) = dispatch(alert, [WebhookChannel(closed, retries=0)])
    assert not refused.ok and "cannot reach" in (refused.error or "")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "not a url",
        "http://",
        "",
        "http://exa mple.com/",
        "http://example.com:99999/",
        None,
    ],
)
def test_bad_webhook_urls_are_refused_up_front(url: Any) -> None:
    with pytest.raises(ConfigError, match="url"):
        WebhookChannel(url)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 1000}, "retries"),
        ({"headers": {"X-A": "b\r\nInjected: 1"}}, "header"),
    ],
)
def test_bad_webhook_settings_name_the_field(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WebhookChannel("http://127.0.0.1/x", **arguments)


SCRIPT = """
import json, os, sys
document = json.load(sys.stdin)
env = json.loads(os.environ["SHIPYARD_ALERT"])
with open(sys.argv[1], "w") as out:
    json.dump({"stdin": document, "env": env,
               "severity": os.environ["SHIPYARD_ALERT_SEVERITY"],
               "team": os.environ.get("TEAM")}, out)
"""


def test_command_gets_the_alert_on_stdin_and_env(tmp_path: Path, alert: Any) -> None:
    script, out = tmp_path / "notify.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    command = CommandChannel([sys.executable, str(script), str(out)], env={"TEAM": "ml"})
    (delivery,) = dispatch(alert, [command])
    assert delivery.ok, delivery.error
    seen = json.loads(out.read_text())
    assert seen["stdin"]["id"] == alert.id == seen["env"]["id"]
    assert (seen["severity"], seen["team"]) == ("critical", "ml")


def test_failing_hanging_and_missing_commands_are_recorded(tmp_path: Path, alert: Any) -> None:
    failing = CommandChannel(
        [sys.executable, "-c", "import sys; sys.stderr.write('pager is down'); sys.exit(3)"]
    )
    # The hanging command starts a child of its own: the timeout kills both.
    marker = tmp_path / "child-ran"
    script = tmp_path / "hang.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = 'import sys, time; time.sleep(3); open(sys.argv[1], \"w\").close()'\n"
        "subprocess.Popen([sys.executable, '-c', child, sys.argv[1]])\n"
        "time.sleep(30)\n"
    )
    hanging = CommandChannel([sys.executable, str(script), str(marker)], timeout=0.5)
    missing = CommandChannel("/nonexistent/notify --now")
    started = time.monotonic()
    failed, timed_out, absent = dispatch(alert, [failing, hanging, missing])
    assert time.monotonic() - started < 10
    assert (
        not failed.ok
        and "status 3" in (failed.error or "")
        and "pager is down" in (failed.error or "")
    )
    assert not timed_out.ok and "did not finish within 0.5 s" in (timed_out.error or "")
    assert not absent.ok and "cannot run '/nonexistent/notify'" in (absent.error or "")
    time.sleep(3.2)
    assert not marker.exists(), "the command's child outlived the timeout"


@pytest.mark.parametrize("command", ["", "   ", [], ["a", 3], "unclosed 'quote", ["a\x00b"]])
def test_bad_commands_are_refused_up_front(command: Any) -> None:
    with pytest.raises(ConfigError, match="command"):
        CommandChannel(command)


def test_log_channel_logs_at_the_alert_severity(
    alert: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="shipyard.alerts"):
        (delivery,) = dispatch(alert, [LogChannel()])
    assert delivery.ok
    record = next(r for r in caplog.records if r.name == "shipyard.alerts")
    assert record.levelno == logging.ERROR and "recall 0.41 < 0.60" in record.getMessage()


class Broken(Channel):
    name = "broken"

    def send(self, payload: Mapping[str, Any]) -> int:
        raise RuntimeError("boom")


def test_a_broken_channel_does_not_stop_the_others_and_is_stored(
    receiver: Receiver, alert: Any, metadata: MetadataStore
) -> None:
    manager = AlertManager(metadata, [AlertRule("perf", kind="performance")])
    deliveries = dispatch(alert, [Broken(), WebhookChannel(receiver.url)], manager=manager)
    assert [(d.channel, d.ok) for d in deliveries] == [("broken", False), ("webhook", True)]
    assert "RuntimeError: boom" in (deliveries[0].error or "")
    stored = manager.deliveries(alert.id)
    assert [(r["channel"], r["ok"], r["event"]) for r in stored] == [
        ("broken", False, "fired"),
        ("webhook", True, "fired"),
    ]


def test_channels_from_a_config_table(receiver: Receiver) -> None:
    channels = parse_channels(
        {
            "ops_log": {"type": "log"},
            "hook": {"type": "webhook", "url": receiver.url, "timeout": 2, "retries": 1},
            "pager": {"type": "command", "command": f"{shutil.which('true') or 'true'}"},
        }
    )
    assert [type(c).__name__ for c in channels] == [
        "LogChannel",
        "WebhookChannel",
        "CommandChannel",
    ]
    assert [c.name for c in channels] == ["ops_log", "hook", "pager"]
    for table, message in [
        ({"x": {"type": "sms"}}, "type 'sms' is unknown"),
        ({"x": {"type": "webhook"}}, "missing 'url'"),
        ({"x": {"type": "webhook", "url": receiver.url, "retry": 1}}, "unknown key 'retry'"),
        ({"x": {"type": "command"}}, "missing 'command'"),
        ({"x": "log"}, "must be a table"),
        ("log", "must be a table of channels"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_channels(table)
