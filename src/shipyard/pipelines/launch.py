"""The process the scheduler starts for each run: ``python -m shipyard.pipelines.launch``.

Each scheduled or triggered run gets its own process, so a pipeline that crashes, leaks
or hangs cannot take the scheduler down. The process runs the pipeline and prints one
JSON line last, ``{"run_id": ..., "status": ..., "error": ...}``; its exit code is 0
(finished), 1 (failed) or 130 (interrupted: SIGINT or SIGTERM mark the run killed).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["main"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shipyard.pipelines.launch")
    parser.add_argument("--project", required=True)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--params", default="{}", help="JSON object of parameter values")
    parser.add_argument("--executor", default="inprocess")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    from shipyard.core.config import load_config
    from shipyard.core.errors import ShipyardError
    from shipyard.pipelines.errors import PipelineRunFailed
    from shipyard.pipelines.runner import run_pipeline

    report: dict[str, Any] = {"run_id": None, "status": "failed", "error": None}
    code = 1
    try:
        config = load_config(Path(args.project))
        result = run_pipeline(
            args.pipeline, json.loads(args.params), config=config, executor=args.executor
        )
        report.update(run_id=result.run_id, status=result.status)
        code = 0
    except PipelineRunFailed as exc:
        report.update(run_id=exc.run_id, error=exc.message)
    except KeyboardInterrupt:
        report.update(status="killed", error="interrupted")
        code = 130
    except ShipyardError as exc:
        report.update(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the scheduler, which goes on
        report.update(error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(report), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
