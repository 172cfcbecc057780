"""Shipyard: the whole life of a production ML model, in one Python platform.

``import shipyard as sy`` is kept fast: heavy libraries load where they are used.
"""

from shipyard._version import __version__

__all__ = ["__version__"]
