"""What a run records about where it ran: code version, Python environment, user, source.

- Code version: the git commit of the folder holding the entry-point script (or the
  working directory), whether the tree is dirty (tracked files changed; untracked files
  do not count), and ``git diff HEAD`` capped at ``MAX_DIFF_BYTES``. The ``git``
  executable is run in a subprocess with a timeout; no git, no repository, or a
  repository without commits gives ``None``.
- Environment: the installed distributions (``importlib.metadata``), the Python version
  and the platform, captured once per process and identified by the content id of its
  canonical JSON, so a store keeps each environment once however many runs used it.

>>> code = capture_code(Path.cwd())
>>> code is None or len(code.commit) == 40
True
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from shipyard.core.ids import content_id_of_bytes

__all__ = [
    "CodeVersion",
    "Environment",
    "MAX_DIFF_BYTES",
    "capture_code",
    "capture_environment",
    "current_user",
    "entry_point",
]

MAX_DIFF_BYTES = 2 * 1024 * 1024
"""A diff larger than this is cut here, with a last line saying how much was left out."""
_GIT_TIMEOUT_SECONDS = 10.0
_DIST_INFO = re.compile(r"([^-]+)-([^-]+)\.dist-info")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The code a run ran: its commit, whether the tree was dirty, the uncommitted diff."""

    commit: str
    dirty: bool
    diff: bytes
    """``git diff HEAD`` (empty when clean), cut at ``MAX_DIFF_BYTES``."""


@dataclass(frozen=True, slots=True)
class Environment:
    """A Python environment: interpreter, platform, installed distributions."""

    id: str
    python_version: str
    platform: str
    packages: dict[str, str]

    def canonical_json(self) -> bytes:
        return _canonical(self.python_version, self.platform, self.packages)


def entry_point() -> str | None:
    """The script the process runs (absolute path), or ``None`` (REPL, ``-c``, notebook).

    Resolved once per value of ``sys.argv[0]`` (a run's creation must not pay for it).
    """
    return _resolved_script(sys.argv[0] if sys.argv else "")


@cache
def _resolved_script(argv0: str) -> str | None:
    if argv0 and argv0 not in ("-c", "-m") and os.path.isfile(argv0):
        return str(Path(argv0).resolve())
    return None


def current_user() -> str:
    """The login name of the process's user (``unknown`` when it has none, e.g. in a container)."""
    try:
        return getpass.getuser()[:256] or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def capture_code(folder: Path | None = None) -> CodeVersion | None:
    """The git commit, dirtiness and diff of the repository holding ``folder``.

    ``folder`` defaults to the entry-point script's folder, else the working directory.
    Returns ``None`` when git is missing, the folder is not in a repository, the
    repository has no commit yet, or git does not answer within its timeout.
    """
    if folder is None:
        script = entry_point()
        folder = Path(script).parent if script else Path.cwd()
    git = shutil.which("git")
    if git is None or not folder.is_dir():
        return None
    commit = _git_text([git, "rev-parse", "--verify", "--quiet", "HEAD"], folder)
    if commit is None or not _COMMIT.fullmatch(commit):
        return None
    status = _git_text([git, "status", "--porcelain", "--untracked-files=no"], folder)
    dirty = bool(status)
    diff = _git_diff([git, "diff", "--no-color", "--no-ext-diff", "HEAD"], folder) if dirty else b""
    return CodeVersion(commit=commit, dirty=dirty, diff=diff)


@cache
def capture_environment() -> Environment:
    """The Python environment of this process, captured once and cached."""
    from importlib import metadata

    packages: dict[str, str] = {}
    for distribution in metadata.distributions():
        found = _name_and_version(distribution)
        if found is not None:
            packages.setdefault(*found)  # the first one on sys.path is the one imported
    python = f"{platform.python_implementation()} {platform.python_version()}"[:64]
    system = platform.platform()[:256]
    ordered = dict(sorted(packages.items()))
    return Environment(
        id=content_id_of_bytes(_canonical(python, system, ordered)),
        python_version=python,
        platform=system,
        packages=ordered,
    )


def _name_and_version(distribution: Any) -> tuple[str, str] | None:
    # A wheel's ``name-version.dist-info`` folder says both without parsing its METADATA
    # file, which makes capturing a large environment ~10x faster.
    folder = getattr(distribution, "_path", None)
    match = _DIST_INFO.fullmatch(folder.name) if isinstance(folder, Path) else None
    if match:
        name, version = match.group(1), match.group(2)
    else:
        name = (distribution.metadata or {}).get("Name") or ""
        version = distribution.version or ""
    if not name:
        return None
    return re.sub(r"[-_.]+", "-", name).lower(), version


def _canonical(python: str, system: str, packages: dict[str, str]) -> bytes:
    document: dict[str, Any] = {"packages": packages, "platform": system, "python": python}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _git_env() -> dict[str, str]:
    # Never prompt, never page, and do not let the user's locale change the output.
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"})
    return env


def _git_text(command: list[str], folder: Path) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
            command,
            cwd=folder,
            capture_output=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            env=_git_env(),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", "replace").strip()


def _git_diff(command: list[str], folder: Path) -> bytes:
    """The command's output, up to ``MAX_DIFF_BYTES``; git is stopped once that is read."""
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed git arguments, no shell
            command,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_git_env(),
        )
    except OSError:
        return b""
    stdout = process.stdout
    if stdout is None:  # pragma: no cover - stdout=PIPE guarantees it
        process.kill()
        return b""
    watchdog = threading.Timer(_GIT_TIMEOUT_SECONDS, process.kill)
    watchdog.start()
    kept = bytearray()
    cut = False
    try:
        while chunk := stdout.read(1 << 16):
            kept += chunk
            if len(kept) > MAX_DIFF_BYTES:
                cut = True
                process.kill()
                break
    finally:
        watchdog.cancel()
        stdout.close()
        process.wait()
    if not cut and process.returncode != 0:
        return b""
    if cut:
        del kept[MAX_DIFF_BYTES:]
        kept += f"\n# shipyard: diff cut at {MAX_DIFF_BYTES:,} bytes\n".encode("ascii")
    return bytes(kept)
