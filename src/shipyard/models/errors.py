"""The registry's own error: a caller's argument that cannot be used.

Everything else the registry raises comes from ``shipyard.core.errors`` (``NotFoundError``
for an unknown model, version or alias; ``GateFailed`` for a refused promotion;
``AlreadyExistsError``; ``IntegrityError`` for stored files that no longer match).
"""

from __future__ import annotations

from shipyard.core.errors import ShipyardError

__all__ = ["ModelInputError"]


class ModelInputError(ShipyardError, ValueError):
    """An argument to the registry is malformed, of the wrong type, or contradicts another
    (an alias that reads as a version, an override without a reason, a run without a
    model...). The message names the argument and what to pass instead."""

    code = "SY850"
