"""The datasets subsystem's errors, both ``DataContractError``s (bad data, not a bug).

::

    DataContractError (core)
    ├── SourceError        the input cannot be read as declared: empty, wrong encoding,
    │                      missing column, changed while it was read...
    └── ContractFailed     the data was read, but an error-severity rule failed; carries
                           the full ``report`` (and no version was created)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.errors import DataContractError

if TYPE_CHECKING:
    from shipyard.data.report import ContractReport

__all__ = ["ContractFailed", "SourceError"]


class SourceError(DataContractError):
    """The source cannot be read as declared; the message names the file, row or column."""

    code = "SY310"


class ContractFailed(DataContractError):  # noqa: N818 - reads as the event it reports
    """An error-severity rule failed: no version was created. ``report`` says why."""

    code = "SY320"

    def __init__(self, message: str, *, report: ContractReport, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report
