"""Alert channels: where an alert goes. A log, a webhook, a command to run.

>>> channels = [
...     LogChannel(),
...     WebhookChannel("https://hooks.example.com/shipyard", timeout=5, retries=2),
...     CommandChannel(["/usr/local/bin/page-oncall", "--team", "ml"], timeout=10),
... ]
>>> deliveries = dispatch(alert, channels, manager=manager)   # never raises for a channel
>>> [(d.channel, d.ok, d.error) for d in deliveries]

Every channel sends the alert's JSON document (``Alert.to_dict()``, format
``shipyard.alert.v1``). The webhook POSTs it (``Content-Type: application/json``),
retrying connection failures, timeouts, 429 and 5xx answers with a growing pause; a 4xx
answer is not retried (the receiver refused the request, resending will not help). The
command gets it on stdin and in ``SHIPYARD_ALERT`` (plus ``SHIPYARD_ALERT_SEVERITY``,
``_MODEL``, ``_KIND``, ``_SUBJECT``, ``_EVENT``); it runs without a shell, and is killed
(with its children) when it outlives its timeout.

A channel that fails does not stop the others and does not raise into the monitor loop:
:func:`dispatch` returns one :class:`Delivery` per channel and, given the manager,
stores them with the alert.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.monitoring.alerts import Alert, AlertManager

__all__ = [
    "Channel",
    "ChannelFailed",
    "CommandChannel",
    "Delivery",
    "LogChannel",
    "WebhookChannel",
    "dispatch",
    "parse_channels",
]

_log = logging.getLogger("shipyard.alerts")
_MAX_TIMEOUT_S = 600.0
_MAX_RETRIES = 10
_ERROR_TAIL = 2000
_RESPONSE_READ = 64 * 1024
_CHANNEL_KEYS: dict[str, tuple[str, ...]] = {
    "log": ("type", "name", "logger"),
    "webhook": ("type", "name", "url", "timeout", "retries", "backoff", "headers"),
    "command": ("type", "name", "command", "timeout", "env"),
}


class ChannelFailed(Exception):  # noqa: N818 - reads like the event it reports
    """A channel could not deliver an alert (kept in the ``Delivery``, never raised out)."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class Delivery:
    """What one channel did with one alert."""

    channel: str
    ok: bool
    attempts: int
    error: str | None
    elapsed_ms: float
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Channel(ABC):
    """Somewhere to send alerts. ``send`` raises ``ChannelFailed`` when it cannot."""

    name: str

    @abstractmethod
    def send(self, payload: Mapping[str, Any]) -> int:
        """Deliver one alert document; return the number of attempts it took."""


class LogChannel(Channel):
    """Writes the alert to a Python logger: critical as ERROR, warning as WARNING, else INFO."""

    _LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}

    def __init__(self, logger: str = "shipyard.alerts", *, name: str = "log") -> None:
        if not isinstance(logger, str) or not logger:
            raise ConfigError(
                f"Log channel {name!r}: logger must be a logger name, not {logger!r}."
            )
        self.name = name
        self.logger = logging.getLogger(logger)

    def send(self, payload: Mapping[str, Any]) -> int:
        level = self._LEVELS.get(str(payload.get("severity")), logging.WARNING)
        if payload.get("event") == "resolved":
            level = logging.INFO
        self.logger.log(
            level,
            "alert %s [%s %s] %s",
            payload.get("id"),
            payload.get("severity"),
            payload.get("event"),
            payload.get("message"),
            extra={"alert": dict(payload)},
        )
        return 1


class WebhookChannel(Channel):
    """POSTs the alert as JSON to an http(s) URL, with a timeout and retries."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
        headers: Mapping[str, str] | None = None,
        name: str = "webhook",
    ) -> None:
        where = f"Webhook channel {name!r}"
        self.url = _check_url(url, where)
        self.timeout = _check_seconds(timeout, f"{where}: timeout")
        if (
            isinstance(retries, bool)
            or not isinstance(retries, int)
            or not 0 <= retries <= _MAX_RETRIES
        ):
            raise ConfigError(
                f"{where}: retries must be an integer from 0 to {_MAX_RETRIES}, not {retries!r}."
            )
        self.retries = retries
        if (
            isinstance(backoff, bool)
            or not isinstance(backoff, int | float)
            or not 0 <= backoff <= 60
        ):
            raise ConfigError(f"{where}: backoff must be 0 to 60 seconds, not {backoff!r}.")
        self.backoff = float(backoff)
        extra = dict(headers or {})
        for key, value in extra.items():
            if (
                not isinstance(key, str)
                or not isinstance(value, str)
                or "\n" in key + value
                or "\r" in key + value
            ):
                raise ConfigError(f"{where}: header {key!r} must be a one-line string pair.")
        self.headers = extra
        self.name = name

    def send(self, payload: Mapping[str, Any]) -> int:
        body = json.dumps(payload, default=str, allow_nan=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "shipyard-alerts/1",
            **self.headers,
        }
        last = ""
        for attempt in range(1, self.retries + 2):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked in __init__
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    response.read(_RESPONSE_READ)
                    return attempt
            except urllib.error.HTTPError as exc:
                text = exc.read(_ERROR_TAIL).decode("utf-8", "replace").strip()
                last = f"HTTP {exc.code} from {self.url}" + (f": {text}" if text else "")
                if exc.code != 429 and exc.code < 500:
                    raise ChannelFailed(last, attempt) from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"cannot reach {self.url}: {reason or type(exc).__name__}"
            if attempt <= self.retries:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise ChannelFailed(f"{last} (after {self.retries + 1} attempts)", self.retries + 1)


class CommandChannel(Channel):
    """Runs a command with the alert as JSON on stdin and in ``SHIPYARD_ALERT``.

    ``command`` is an argument list, or a string split like a shell would (no shell
    runs it: no pipes, no expansion). A non-zero exit, a missing program or a run
    longer than ``timeout`` seconds is a failure carrying the end of its stderr.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
        name: str = "command",
    ) -> None:
        where = f"Command channel {name!r}"
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise ConfigError(f"{where}: cannot split command {command!r}: {exc}.") from exc
        elif isinstance(command, Sequence) and all(isinstance(part, str) for part in command):
            argv = list(command)
        else:
            raise ConfigError(
                f"{where}: command must be a string or a list of strings, not {command!r}."
            )
        if not argv or not argv[0].strip() or any("\x00" in part for part in argv):
            raise ConfigError(
                f"{where}: command {command!r} is empty or holds a NUL byte.",
                hint='e.g. command = ["/usr/local/bin/notify", "--team", "ml"].',
            )
        self.argv = argv
        self.timeout = _check_seconds(timeout, f"{where}: timeout")
        extra = dict(env or {})
        for key, value in extra.items():
            if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
                raise ConfigError(
                    f'{where}: env entry {key!r} must be a NAME = "value" string pair.'
                )
        self.env = extra
        self.name = name

    def send(self, payload: Mapping[str, Any]) -> int:
        document = json.dumps(payload, default=str, allow_nan=False)
        env = {
            **os.environ,
            **self.env,
            "SHIPYARD_ALERT": document,
            **{
                f"SHIPYARD_ALERT_{key.upper()}": str(payload.get(key) or "")
                for key in ("id", "severity", "event", "model", "kind", "subject")
            },
        }
        try:
            process = subprocess.Popen(  # noqa: S603 - argv from the operator's config, no shell
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills its children too
            )
        except OSError as exc:
            raise ChannelFailed(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from exc
        try:
            _, stderr = process.communicate(document.encode(), timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(process)
            raise ChannelFailed(
                f"{self.argv[0]!r} did not finish within {self.timeout:g} s; it was killed."
            ) from exc
        if process.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip()[-_ERROR_TAIL:]
            raise ChannelFailed(
                f"{self.argv[0]!r} exited with status {process.returncode}"
                + (f": {tail}" if tail else ".")
            )
        return 1


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a zombie holding the pipe
        pass


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: url must be an http(s) URL, not {url!r}.")
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            f"{where}: url {url!r} is not an http:// or https:// URL with a host.",
            hint='e.g. url = "https://hooks.example.com/shipyard".',
        )
    if any(char in url for char in "\r\n\t "):
        raise ConfigError(f"{where}: url {url!r} holds whitespace.")
    try:
        _ = parsed.port
    except ValueError as exc:
        raise ConfigError(f"{where}: url {url!r} has a bad port: {exc}.") from exc
    return url.strip()


def _check_seconds(value: Any, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= _MAX_TIMEOUT_S
    ):
        raise ConfigError(
            f"{where} must be a number of seconds above 0 and at most {_MAX_TIMEOUT_S:g}, "
            f"not {value!r}."
        )
    return float(value)


def dispatch(
    alert: Alert | Mapping[str, Any],
    channels: Iterable[Channel],
    *,
    manager: AlertManager | None = None,
) -> list[Delivery]:
    """Send ``alert`` to every channel; one ``Delivery`` each; never raises for a channel.

    With ``manager``, the deliveries are stored with the alert (a store failure there is
    logged, not raised: the alert was sent).
    """
    payload = alert.to_dict() if hasattr(alert, "to_dict") else dict(alert)
    deliveries: list[Delivery] = []
    for channel in channels:
        name = str(getattr(channel, "name", type(channel).__name__))
        started = time.perf_counter()
        try:
            attempts = channel.send(payload)
            deliveries.append(Delivery(name, True, int(attempts), None, _ms(started)))
        except ChannelFailed as exc:
            deliveries.append(Delivery(name, False, exc.attempts, str(exc), _ms(started)))
        except Exception as exc:  # noqa: BLE001 - a broken channel must not stop the monitor
            error = f"{type(exc).__name__}: {exc}"
            deliveries.append(Delivery(name, False, 1, error, _ms(started)))
        if not deliveries[-1].ok:
            _log.warning(
                "alert %s not delivered to %s: %s", payload.get("id"), name, deliveries[-1].error
            )
    if manager is not None and hasattr(alert, "to_dict"):
        try:
            manager.record_deliveries(alert, deliveries)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the alert went out; say the record did not
            _log.error("alert %s: deliveries not recorded: %s", payload.get("id"), exc)
    return deliveries


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def parse_channels(table: Any, *, where: str = "[alerts.channels]") -> list[Channel]:
    """Channels from a config table: ``{name: {type = "webhook", url = ..., ...}}``.

    ``type`` is ``log``, ``webhook`` or ``command``; every other key is that channel's
    argument. A wrong key or value raises ``ConfigError`` naming it.
    """
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(
            f"{where} must be a table of channels, one per name.",
            hint='e.g. oncall = { type = "webhook", url = "https://hooks.example.com/x" }',
        )
    channels: list[Channel] = []
    for name, spec in table.items():
        at = f"{where} {name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f'{at} must be a table such as {{ type = "log" }}.')
        kind = spec.get("type")
        if kind not in _CHANNEL_KEYS:
            raise ConfigError(
                f"{at}: type {kind!r} is unknown.", hint="Use log, webhook or command."
            )
        unknown = [key for key in spec if key not in _CHANNEL_KEYS[kind]]
        if unknown:
            raise ConfigError(
                f"{at}: unknown key {unknown[0]!r} for a {kind} channel.",
                hint=f"Keys: {', '.join(_CHANNEL_KEYS[kind])}.",
            )
        args = {key: value for key, value in spec.items() if key not in ("type", "name")}
        channel_name = str(spec.get("name", name))
        required = {"webhook": "url", "command": "command"}.get(kind)
        if required is not None and required not in args:
            raise ConfigError(f"{at}: missing {required!r}.")
        try:
            channels.append(_channel(kind, args, channel_name))
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc.message}", hint=exc.hint) from exc
    return channels


def _channel(kind: str, args: dict[str, Any], name: str) -> Channel:
    if kind == "log":
        return LogChannel(**args, name=name)
    if kind == "webhook":
        return WebhookChannel(args.pop("url"), **args, name=name)
    return CommandChannel(args.pop("command"), **args, name=name)
