"""Any Python object, stored with the standard library's pickle: only when asked for.

Unpickling runs whatever code the file names, so this flavor is never picked unless the
caller passes ``allow_pickle=True``, both to save and to load. Every load is logged as a
WARNING naming the file and its content id, and the bytes unpickled are the bytes just
checked against that id (read once, hashed, then unpickled), so a file swapped after the
check is never run.

Example::

    save_model(obj, Path("models/obj"), flavor="pickle", allow_pickle=True)
    load_model(Path("models/obj"), allow_pickle=True)
"""

from __future__ import annotations

import logging
import pickle  # noqa: S403 - this flavor exists to use pickle, behind an explicit opt-in
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipyard.core.errors import IntegrityError
from shipyard.core.ids import content_id_of_bytes
from shipyard.formats.base import Flavor, FlavorOutput, ModelFile, ModelInfo

__all__ = ["PICKLE_PROTOCOL", "PickleFlavor", "dump_pickle", "load_pickle"]

MODEL_FILE = "model.pkl"
PICKLE_PROTOCOL = 5
logger = logging.getLogger("shipyard.formats")


def dump_pickle(model: Any, path: Path) -> None:
    """Pickle ``model`` into ``path`` (protocol 5)."""
    with path.open("wb") as out:
        pickle.dump(model, out, protocol=PICKLE_PROTOCOL)


def load_pickle(directory: Path, entry: ModelFile) -> Any:
    """Unpickle a manifest-listed file, after checking its bytes against their content id.

    The caller has already required ``allow_pickle=True``; this logs the load.
    """
    path = directory / entry.name
    data = path.read_bytes()
    actual = content_id_of_bytes(data)
    if actual != entry.content_id:
        raise IntegrityError(
            f"{entry.name!r} in {str(directory)!r} does not match its manifest: expected "
            f"{entry.content_id}, found {actual}.",
            hint="Do not load it; restore the model folder from its source.",
        )
    logger.warning(
        "Unpickling %s (content id %s) because allow_pickle=True was passed; a pickle can "
        "run arbitrary code, load only files you trust.",
        path,
        entry.content_id,
    )
    return pickle.loads(data)  # noqa: S301 - opted in by the caller, bytes verified above


class PickleFlavor(Flavor):
    """Any picklable object; needs ``allow_pickle=True`` to save and to load."""

    name = "pickle"
    priority = 100
    uses_pickle = True

    def matches(self, model: object) -> bool:
        return True

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        dump_pickle(model, directory / MODEL_FILE)
        return FlavorOutput(model_format=f"pickle-{PICKLE_PROTOCOL}", requires=())

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        return load_pickle(directory, info.file(MODEL_FILE))
