"""How S3 failures read: s3fs, botocore and socket errors as Shipyard errors.

Each message names the store, the endpoint and what was being done, on one line, and
the hint says what to fix. botocore is imported only when an error is translated.
"""

from __future__ import annotations

from shipyard.core.errors import BackendError, BackendUnavailableError

__all__ = ["bucket_missing", "translate_s3_error"]


def bucket_missing(store_uri: str, bucket: str, endpoint: str | None) -> BackendUnavailableError:
    """The error for a store whose bucket does not exist."""
    return BackendUnavailableError(
        f"S3 bucket {bucket!r} of the artifact store {store_uri} does not exist at "
        f"{_endpoint_name(endpoint)}.",
        hint=f"Create it (aws s3 mb s3://{bucket}) or set store.artifacts / "
        "SHIPYARD_STORE_ARTIFACTS to an existing bucket.",
    )


def translate_s3_error(
    exc: Exception, *, store_uri: str, endpoint: str | None, action: str
) -> BackendError | None:
    """The Shipyard error for a failure while ``action`` (e.g. "reading a blob"), or
    ``None`` if ``exc`` is not an S3, network or filesystem failure (a bug: re-raise it).

    A ``FileNotFoundError`` is the caller's to interpret (missing blob or bucket).
    """
    # botocore ships no type hints (pyproject's mypy overrides cover s3fs/fsspec only).
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    where = _endpoint_name(endpoint)
    if isinstance(exc, PermissionError):
        return BackendUnavailableError(
            f"S3 at {where} denied access to the artifact store {store_uri} while {action} "
            f"({exc}).",
            hint="Check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS "
            "profile) and the bucket policy.",
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BackendUnavailableError(
            f"No usable S3 credentials for the artifact store {store_uri} ({exc}).",
            hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile.",
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError | TimeoutError | ConnectionError):
        return BackendUnavailableError(
            f"Cannot reach S3 at {where} for the artifact store {store_uri} while {action} "
            f"({_connection_failure(exc)}).",
            hint="Check that the service is running and that s3.endpoint_url / "
            "SHIPYARD_S3_ENDPOINT_URL points at it.",
        )
    if isinstance(exc, ClientError | BotoCoreError | OSError):
        return BackendError(
            f"S3 at {where} failed while {action} in the artifact store {store_uri}: {exc}",
            hint="Retry; if it persists, check the S3 service's logs.",
        )
    return None


def _endpoint_name(endpoint: str | None) -> str:
    return endpoint or "the default AWS endpoint"


def _connection_failure(exc: Exception) -> str:
    """A short reason; botocore's own message repeats the whole request URL."""
    name = type(exc).__name__
    if name == "EndpointConnectionError":
        return "could not connect"
    if name == "ConnectTimeoutError":
        return "connection timed out"
    if "Timeout" in name:
        return "timed out waiting for a response"
    return str(exc)
