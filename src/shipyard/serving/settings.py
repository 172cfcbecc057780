"""The service's settings, from ``[serving]`` in shipyard.toml (or ``SHIPYARD_SERVING_*``).

Every value is checked here, and a bad one is a ``ConfigError`` naming the key, the
value and what is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.core.config import Config

__all__ = ["ServingSettings"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServingSettings:
    """How the service listens, authenticates, batches and watches the registry.

    ``max_body_bytes`` and ``max_records`` bound one request (413 beyond them);
    ``latency_budget_ms`` bounds a micro-batch's model call; ``batching`` False scores
    each request on its own; ``allow_pickle`` loads versions that run stored Python code
    (generic models, pre-/post-processing hooks).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    workers: int = 1
    poll_seconds: float = 2.0
    max_body_bytes: int = 1 << 20
    max_records: int = 10_000
    latency_budget_ms: float = 5.0
    batching: bool = True
    allow_pickle: bool = False

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> ServingSettings:
        """Read and check ``serving.*``; ``overrides`` (CLI options, not None) win."""
        settings = cls(
            host=_host(config.get("serving.host", DEFAULT_HOST) or DEFAULT_HOST),
            port=_int(config.get("serving.port"), "serving.port", DEFAULT_PORT, 1, 65535),
            api_key=config.get("serving.api_key"),
            workers=_int(config.get("serving.workers"), "serving.workers", 1, 1, 64),
            poll_seconds=_float(config.get("serving.poll_seconds"), "serving.poll_seconds", 2.0),
        )
        given = {key: value for key, value in overrides.items() if value is not None}
        if "host" in given:
            given["host"] = _host(given["host"])
        return replace(settings, **given).checked()

    def checked(self) -> ServingSettings:
        _int(str(self.port), "port", DEFAULT_PORT, 1, 65535)
        _int(str(self.workers), "workers", 1, 1, 64)
        if not 0.05 <= self.poll_seconds <= 3600:
            raise ConfigError(
                f"poll_seconds is {self.poll_seconds}; expected 0.05 to 3600 seconds."
            )
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError(
                "serving.api_key is shorter than 8 characters.",
                hint="Use a long random key, e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`.",
            )
        if self.max_body_bytes < 1024 or self.max_records < 1 or self.latency_budget_ms <= 0:
            raise ConfigError("max_body_bytes >= 1024, max_records >= 1, latency budget > 0.")
        return self


def _host(value: str) -> str:
    text = str(value).strip()
    if not text or any(char.isspace() for char in text) or len(text) > 253:
        raise ConfigError(
            f"serving.host is {value!r}; expected an address such as 127.0.0.1 or 0.0.0.0."
        )
    return text


def _int(raw: str | None, key: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(
            f"{key} is {raw!r}; expected a whole number from {low} to {high}.",
            hint=f"Fix it in shipyard.toml or SHIPYARD_{key.upper().replace('.', '_')}.",
        )
    return value


def _float(raw: str | None, key: str, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 3600:
        raise ConfigError(
            f"{key} is {raw!r}; expected a number of seconds from 0.05 to 3600.",
            hint=f"Fix it in shipyard.toml or SHIPYARD_{key.upper().replace('.', '_')}.",
        )
    return value
