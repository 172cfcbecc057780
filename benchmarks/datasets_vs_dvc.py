"""File versions and table ingestion: Shipyard's CLI against DVC's, side by side.

Issue 4, point 9. Every timed operation is a command run as a fresh process, as a user
runs it, timed from outside (wall time of the whole process, start-up included):

- versioning one 1 GiB file (``shipyard datasets ingest NAME FILE --files --link
  hardlink`` against ``dvc add FILE``), target: Shipyard at least 5x faster;
- versioning a folder of 10,000 files of 1 KiB each (same commands on the folder),
  target: 5x;
- the no-change status of that folder (``shipyard datasets status NAME`` against
  ``dvc status FOLDER.dvc``), target: 5x;
- ingesting a 10,000,000-row CSV table (``shipyard datasets ingest NAME FILE.csv``):
  its peak memory (the process's max RSS), target: under 1 GiB. DVC does not parse
  tables, so this figure is Shipyard's alone.

DVC runs in its own venv (``benchmarks/.venvs/``, pinned) in a repository made with
``dvc init --no-scm`` (no git), with its documented fast settings: ``cache.type
hardlink`` (the fastest link this ext4 disk offers: no reflinks), ``core.autostage
false``, analytics and update checks off, its site cache inside the temporary folder.
Shipyard uses the same link mode (``--link hardlink``) for large files; small files
(under 256 KiB) are packed into pack blobs on its side (a copy), which DVC does not do.

All data is generated deterministically (seeded) under one temporary folder on the
repository's disk before anything is timed, flushed to disk (``sync``), and removed at
the end. Each side gets its own copy of every file (a hard-linked file becomes part of
that side's store). Runs alternate the order of the sides round by round.

Run from the repository root::

    .venv/bin/python benchmarks/datasets_vs_dvc.py

The last line printed is the JSON summary. ``--small`` runs tiny sizes, to check the
script itself in seconds (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from _peers import (
    BenchmarkError,
    Result,
    emit_json,
    ensure_peer_venv,
    interleaved_timings,
    print_table,
    progress,
)

DVC_VERSION = "3.67.1"
SEED = 20_261_126
LINK = "hardlink"

LARGE_BYTES = 1 << 30
LARGE_REPEATS = 3
MANY_FILES = 10_000
MANY_FILE_BYTES = 1024
MANY_REPEATS = 3
STATUS_REPEATS = 7
TABLE_ROWS = 10_000_000
STARTUP_REPEATS = 7

ADD_LARGE_TARGET = 5.0
ADD_MANY_TARGET = 5.0
STATUS_TARGET = 5.0
INGEST_PEAK_MB_TARGET = 1024.0

_BLOCK = 64 << 20  # large files are written in blocks of this size
_SIDES = ("shipyard", "dvc")
# DVC sends usage analytics from a background process (off here; update checks are off in
# its config), so no network traffic and no extra processes land inside the timings.
_DVC_ENV = {"DVC_NO_ANALYTICS": "1"}


@dataclass(frozen=True)
class Timed:
    """One command's wall time, CPU time (user + system, all its threads) and output."""

    seconds: float
    cpu_seconds: float
    stdout: str


LOADS: list[float] = []
"""The 1-minute load average before each command run: the machine is shared."""


def run(command: list[str], cwd: Path, env: dict[str, str]) -> Timed:
    """Run ``command`` as a fresh process; its wall time, measured from outside."""
    LOADS.append(os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = (completed.stdout + completed.stderr).decode(errors="replace")
    if completed.returncode != 0:
        raise BenchmarkError(
            f"{' '.join(command)} (in {cwd}) exited {completed.returncode}:\n{output[-3000:]}"
        )
    return Timed(elapsed, cpu, output)


# A process's max RSS, as the kernel counts it, taken by a small launcher: a child forked
# from this (large) benchmark process would start from the benchmark's own high-water
# mark, so wait4() here would report at least that. The launcher is a bare interpreter
# (about 10 MB), below any figure it measures.
_PEAK_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_peak(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[Timed, float]:
    """``run`` through the launcher; also return the command's peak memory in MB."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "maxrss"
        timed = run([sys.executable, "-S", "-c", _PEAK_LAUNCHER, str(report), *command], cwd, env)
        return timed, int(report.read_text()) / 1024


# --- Deterministic data -------------------------------------------------------------------


def write_large_file(path: Path, size: int, base: bytes, label: str) -> None:
    """``size`` bytes: blocks of seeded random bytes, each stamped with ``label`` and its
    index so that no two blocks (and no two files with different labels) are equal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        written = 0
        index = 0
        while written < size:
            stamp = f"{label}:{index:08d}:".encode().ljust(64, b".")
            block = stamp + base[len(stamp) :]
            take = min(len(block), size - written)
            out.write(block[:take])
            written += take
            index += 1


def write_many_files(folder: Path, count: int, size: int, base: bytes, label: str) -> None:
    """``count`` files of ``size`` bytes each, all different (stamped like the blocks)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        stamp = f"{label}:{index:08d}:".encode()
        offset = (index * 7919) % (len(base) - size)
        (folder / f"file-{index:05d}.bin").write_bytes(
            stamp + base[offset : offset + size - len(stamp)]
        )


def write_table_csv(path: Path, rows: int) -> int:
    """A seeded table of ``rows`` rows as CSV (id, user, amount, count, flag, day,
    category, note); returns its size in bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(SEED)
    categories = pa.array(["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"])
    notes = pa.array(["ok", ""])
    chunk = 1_000_000
    start_day = np.datetime64("2024-01-01")
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("user", pa.string()),
            ("amount", pa.float64()),
            ("count", pa.int64()),
            ("flag", pa.bool_()),
            ("day", pa.date32()),
            ("category", pa.string()),
            ("note", pa.string()),
        ]
    )
    with pacsv.CSVWriter(str(path), schema) as writer:
        for first in range(0, rows, chunk):
            n = min(chunk, rows - first)
            users = pc.utf8_lpad(pa.array(rng.integers(0, 100_000, n)).cast(pa.string()), 5, "0")
            days = start_day + rng.integers(0, 730, n).astype("timedelta64[D]")
            columns = [
                pa.array(np.arange(first, first + n, dtype=np.int64)),
                pc.binary_join_element_wise("u", users, ""),
                pa.array(np.round(rng.gamma(2.0, 50.0, n), 2)),
                pa.array(rng.poisson(3, n).astype(np.int64)),
                pa.array(rng.random(n) < 0.3),
                pa.array(days, pa.date32()),
                categories.take(pa.array(rng.integers(0, len(categories), n))),
                notes.take(pa.array((rng.random(n) < 0.05).astype(np.int64))),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return path.stat().st_size


# --- The two sides ------------------------------------------------------------------------


@dataclass
class Sides:
    shipyard_bin: Path
    dvc_bin: Path
    shipyard_env: dict[str, str]
    dvc_env: dict[str, str]
    root: Path

    def project(self, side: str) -> Path:
        return self.root / side

    def env(self, side: str) -> dict[str, str]:
        return self.shipyard_env if side == "shipyard" else self.dvc_env

    def add(self, side: str, name: str, relpath: str) -> list[str]:
        if side == "shipyard":
            return [
                str(self.shipyard_bin),
                "datasets",
                "ingest",
                name,
                relpath,
                "--files",
                "--link",
                LINK,
            ]
        return [str(self.dvc_bin), "add", relpath]

    def status(self, side: str, name: str, relpath: str) -> list[str]:
        if side == "shipyard":
            return [str(self.shipyard_bin), "datasets", "status", name]
        return [str(self.dvc_bin), "status", f"{relpath}.dvc"]


def set_up(sides: Sides) -> dict[str, str]:
    """Create both projects (untimed); return DVC's durability-relevant settings."""
    shipyard_dir = sides.project("shipyard")
    dvc_dir = sides.project("dvc")
    run([str(sides.shipyard_bin), "init", str(shipyard_dir)], sides.root, sides.shipyard_env)
    dvc_dir.mkdir()
    dvc = str(sides.dvc_bin)
    run([dvc, "init", "--no-scm", "-q"], dvc_dir, sides.dvc_env)
    site_cache = sides.root / "dvc-site-cache"
    for key, value in (
        ("cache.type", LINK),
        ("core.autostage", "false"),
        ("core.analytics", "false"),
        ("core.check_update", "false"),
        ("core.site_cache_dir", str(site_cache)),
    ):
        run([dvc, "config", key, value], dvc_dir, sides.dvc_env)
    config = (dvc_dir / ".dvc" / "config").read_text()
    return {"dvc_config": " ".join(config.split())}


def nlink(path: Path) -> int:
    return path.stat().st_nlink


# --- The benchmark ------------------------------------------------------------------------


def timed_rounds(
    sides: Sides,
    repeats: int,
    command_of: Callable[[str, int], list[str]],
    check: Callable[[str, int, Timed], None],
) -> dict[str, list[Timed]]:
    """``repeats`` rounds; in round ``r`` each side runs ``command_of(side, r)`` in its
    project, the order of the sides alternating round by round."""
    timings: dict[str, list[Timed]] = {side: [] for side in _SIDES}
    for index in range(repeats):
        order = _SIDES if index % 2 == 0 else _SIDES[::-1]
        for side in order:
            timed = run(command_of(side, index), sides.project(side), sides.env(side))
            check(side, index, timed)
            timings[side].append(timed)
        progress(
            f"  round {index + 1}/{repeats}: "
            + ", ".join(
                f"{side} {t.seconds:.2f} s (CPU {t.cpu_seconds:.2f})"
                for side, t in ((side, timings[side][-1]) for side in _SIDES)
            )
            + f"; load {os.getloadavg()[0]:.1f}"
        )
    return timings


def median_s(values: list[Timed]) -> float:
    return statistics.median(t.seconds for t in values)


def median_cpu(values: list[Timed]) -> float:
    return statistics.median(t.cpu_seconds for t in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="Tiny sizes: check the script.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    args = parser.parse_args()
    large_bytes, many_files, rows = LARGE_BYTES, MANY_FILES, TABLE_ROWS
    if args.small:
        large_bytes, many_files, rows = 8 << 20, 200, 50_000

    started_all = time.perf_counter()
    dvc_python = ensure_peer_venv(f"dvc-{DVC_VERSION}", [f"dvc=={DVC_VERSION}"])
    shipyard_bin = Path(sys.executable).parent / "shipyard"
    dvc_bin = dvc_python.parent / "dvc"
    root = Path(tempfile.mkdtemp(prefix="shipyard-bench-dvc-"))
    # Both sides run as a user runs them: no SHIPYARD_* overrides, and bytecode caches on
    # (a PYTHONDONTWRITEBYTECODE inherited from a CI shell would make every fresh process
    # recompile the side's source modules, which an installed tool never does).
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHIPYARD_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    sides = Sides(
        shipyard_bin=shipyard_bin,
        dvc_bin=dvc_bin,
        shipyard_env={**base_env},
        dvc_env={**base_env, **_DVC_ENV},
        root=root,
    )
    try:
        return _benchmark(sides, large_bytes, many_files, rows, started_all)
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            _remove(root)


def _remove(root: Path) -> None:
    """Remove the temporary folder, read-only parts (stores, caches) included."""

    def writable_and_retry(function: Callable[[str], object], path: str, _exc: object) -> None:
        os.chmod(Path(path).parent, stat.S_IRWXU)
        function(path)

    shutil.rmtree(root, onerror=writable_and_retry)


def _benchmark(
    sides: Sides, large_bytes: int, many_files: int, rows: int, started_all: float
) -> int:
    repo = Path(__file__).resolve().parent
    same_disk = sides.root.stat().st_dev == repo.stat().st_dev
    progress(f"working in {sides.root} (same filesystem as the repository: {same_disk})")
    settings = set_up(sides)

    # --- data, generated before anything is timed --------------------------------------
    progress("generating data ...")
    started = time.perf_counter()
    base = random.Random(SEED).randbytes(_BLOCK)
    for side in _SIDES:
        data = sides.project(side) / "data"
        write_large_file(data / "warmup.bin", 2 << 20, base, "warmup")
        for rep in range(LARGE_REPEATS):
            write_large_file(data / f"large-{rep}.bin", large_bytes, base, f"large-{rep}")
        write_many_files(data / "warmup-many", 20, MANY_FILE_BYTES, base, "warmup-many")
        for rep in range(MANY_REPEATS):
            write_many_files(data / f"many-{rep}", many_files, MANY_FILE_BYTES, base, f"m{rep}")
    table = sides.project("shipyard") / "data" / "table.csv"
    table_bytes = write_table_csv(table, rows)
    os.sync()
    generated_s = time.perf_counter() - started
    progress(f"generated in {generated_s:.0f} s (table CSV {table_bytes / 1e6:,.0f} MB)")
    # The stat caches on both sides skip files modified in the last moments (a racy
    # timestamp); real data is older than that, so let the clock move past it.
    time.sleep(max(0.0, 2.5 - (time.perf_counter() - started)))

    # --- warm-up: first-use costs (bytecode, caches, state databases), untimed ---------
    for side in _SIDES:
        for name, rel in (("warmup", "data/warmup.bin"), ("warmup-many", "data/warmup-many")):
            run(sides.add(side, name, rel), sides.project(side), sides.env(side))

    # --- 1 GiB file --------------------------------------------------------------------
    progress(f"adding a {large_bytes / (1 << 30):.2f} GiB file, {LARGE_REPEATS} rounds ...")

    def check_large(side: str, rep: int, timed: Timed) -> None:
        path = sides.project(side) / "data" / f"large-{rep}.bin"
        if side == "dvc" and not path.with_name(path.name + ".dvc").exists():
            raise BenchmarkError(f"dvc add wrote no {path.name}.dvc:\n{timed.stdout}")
        if side == "shipyard" and "Created large-" not in timed.stdout:
            raise BenchmarkError(f"shipyard created no version:\n{timed.stdout}")
        if nlink(path) < 2:
            raise BenchmarkError(f"{side} did not hard-link {path} into its cache/store")

    large = timed_rounds(
        sides,
        LARGE_REPEATS,
        lambda side, rep: sides.add(side, f"large-{rep}", f"data/large-{rep}.bin"),
        check_large,
    )

    # --- 10,000 files of 1 KiB --------------------------------------------------------
    progress(f"adding a folder of {many_files:,} files of 1 KiB, {MANY_REPEATS} rounds ...")

    def check_many(side: str, rep: int, timed: Timed) -> None:
        if side == "dvc" and not (sides.project(side) / "data" / f"many-{rep}.dvc").exists():
            raise BenchmarkError(f"dvc add wrote no many-{rep}.dvc:\n{timed.stdout}")
        if side == "shipyard" and f"{many_files:,} files" not in timed.stdout:
            raise BenchmarkError(f"shipyard did not version {many_files} files:\n{timed.stdout}")

    many = timed_rounds(
        sides,
        MANY_REPEATS,
        lambda side, rep: sides.add(side, f"many-{rep}", f"data/many-{rep}"),
        check_many,
    )

    # --- status, nothing changed -------------------------------------------------------
    progress(f"status of an unchanged folder of {many_files:,} files ...")
    last = MANY_REPEATS - 1

    def check_status(side: str, _rep: int, timed: Timed) -> None:
        clean = (
            "clean (" in timed.stdout
            if side == "shipyard"
            else "Data and pipelines are up to date" in timed.stdout
        )
        if not clean:
            raise BenchmarkError(f"{side} status does not say clean:\n{timed.stdout}")

    def status_command(side: str, _rep: int) -> list[str]:
        return sides.status(side, f"many-{last}", f"data/many-{last}")

    for side in _SIDES:  # warm-up round
        check_status(side, 0, run(status_command(side, 0), sides.project(side), sides.env(side)))
    status = timed_rounds(sides, STATUS_REPEATS, status_command, check_status)

    # --- start-up, on its own line --------------------------------------------------------
    progress("start-up ...")
    startup = interleaved_timings(
        {
            "floor": [sys.executable, "-c", "pass"],
            "shipyard": [str(sides.shipyard_bin), "--version"],
            "dvc": [str(sides.dvc_bin), "--version"],
        },
        repeats=STARTUP_REPEATS,
    )

    # --- 10M-row CSV ingest (Shipyard alone) ------------------------------------------------
    progress(f"ingesting a {rows:,}-row CSV ({table_bytes / 1e6:,.0f} MB) ...")
    ingest, ingest_peak_mb = run_peak(
        [str(sides.shipyard_bin), "datasets", "ingest", "table", "data/table.csv", "--json"],
        sides.project("shipyard"),
        sides.shipyard_env,
    )
    if f'"num_rows": {rows}' not in ingest.stdout:
        raise BenchmarkError(f"the ingest did not report {rows} rows:\n{ingest.stdout[-2000:]}")

    # --- report ----------------------------------------------------------------------
    shipyard_version = run(
        [str(sides.shipyard_bin), "--version"], sides.root, sides.shipyard_env
    ).stdout.strip()
    dvc_version = run([str(sides.dvc_bin), "--version"], sides.root, sides.dvc_env).stdout.strip()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(
        f"1-minute load average before the timed commands: min {min(LOADS):.1f}, "
        f"median {statistics.median(LOADS):.1f}, max {max(LOADS):.1f} (2 idle cores: about 0-2)"
    )
    print(f"shipyard: {shipyard_version}; dvc: {dvc_version}")
    print(
        f"data: generated in {generated_s:.0f} s under {sides.root} (same filesystem as the "
        f"repository: {same_disk}; removed afterwards)"
    )
    print(f"link mode, both sides: {LINK}; DVC config: {settings['dvc_config']}")
    print(
        "durability: Shipyard fsyncs every blob before it records it: pack blobs and the "
        "manifest are written, fsynced and renamed; a hard-linked file is fsynced and renamed "
        "into the store; each rename's folder is fsynced; metadata in SQLite WAL, "
        "synchronous=NORMAL; its stat cache (a cache: lost entries are re-hashed) is not "
        "fsynced. DVC: no fsync of cache files or links (dvc, dvc-data and dvc-objects never "
        "call fsync); its state in SQLite (diskcache, WAL, synchronous=NORMAL)."
    )
    rows_out = []
    for label, timings in (
        (f"add one {large_bytes / (1 << 30):.2f} GiB file", large),
        (f"add a folder of {many_files:,} x 1 KiB", many),
        ("status, unchanged folder", status),
    ):
        ship, dvc = median_s(timings["shipyard"]), median_s(timings["dvc"])
        ship_cpu, dvc_cpu = median_cpu(timings["shipyard"]), median_cpu(timings["dvc"])
        rows_out.append(
            (
                label,
                len(timings["shipyard"]),
                ship,
                min(t.seconds for t in timings["shipyard"]),
                dvc,
                min(t.seconds for t in timings["dvc"]),
                f"{dvc / ship:.1f}x",
                ship_cpu,
                dvc_cpu,
                f"{dvc_cpu / ship_cpu:.1f}x",
            )
        )
    print_table(
        [
            "operation (fresh process each)",
            "runs",
            "Shipyard median s",
            "min",
            "DVC median s",
            "min",
            "DVC / Shipyard",
            "Shipyard CPU s",
            "DVC CPU s",
            "CPU ratio",
        ],
        rows_out,
        title="Timed commands (wall time from outside, start-up included)",
    )
    floor = statistics.median(startup["floor"])
    print_table(
        ["start-up (fresh process, median ms)", "Shipyard", "DVC"],
        [
            (
                "`X --version`",
                statistics.median(startup["shipyard"]),
                statistics.median(startup["dvc"]),
            ),
            ("`python -c pass` (floor)", floor, floor),
        ],
        title=f"Start-up, not subtracted above ({STARTUP_REPEATS} interleaved runs)",
    )
    print(
        f"\ningest of {rows:,} rows ({table_bytes / 1e6:,.0f} MB CSV): "
        f"{ingest.seconds:.1f} s, peak RSS {ingest_peak_mb:,.0f} MB"
    )
    results = [
        Result(
            "add_large_file_speedup",
            round(median_s(large["dvc"]) / median_s(large["shipyard"]), 2),
            "x",
            ">=",
            ADD_LARGE_TARGET,
        ),
        Result(
            "add_many_files_speedup",
            round(median_s(many["dvc"]) / median_s(many["shipyard"]), 2),
            "x",
            ">=",
            ADD_MANY_TARGET,
        ),
        Result(
            "status_speedup",
            round(median_s(status["dvc"]) / median_s(status["shipyard"]), 2),
            "x",
            ">=",
            STATUS_TARGET,
        ),
        Result("ingest_10m_peak_mb", round(ingest_peak_mb, 1), "MB", "<=", INGEST_PEAK_MB_TARGET),
    ]
    print_table(
        ["result", "value", "target", "met"],
        [(r.name, f"{r.value}", f"{r.op} {r.target:g}", "yes" if r.met else "NO") for r in results],
        title="Targets",
    )
    print(f"\ntotal time {time.perf_counter() - started_all:.0f} s", file=sys.stderr)
    emit_json("datasets_vs_dvc", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
