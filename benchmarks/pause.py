"""Runs a command while a benchmark of a work dir is paused, and records the pause so step times exclude it.

A benchmark measures wall times on an otherwise idle machine; on 2 cores a test run beside it slows both several
times. This stops the benchmark's whole process group (SIGSTOP), runs the command, continues the benchmark
(SIGCONT, also when the command fails) and appends the interval to ``<work-dir>/pauses.jsonl``; the benchmark's
step log reports each step's time with the pauses taken out (``wall_s``; the pauses in ``paused_s``).

Example:
    python benchmarks/pause.py --work-dir work_dirs/acdc_L7_ds4 -- .venv/bin/python -m pytest -q tests/test_config.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    pid_file = args.work_dir / "benchmark.pid"
    group = int(pid_file.read_text()) if pid_file.is_file() else None
    if group is not None:
        try:
            os.killpg(group, signal.SIGSTOP)
        except ProcessLookupError:
            group = None
    start = time.time()
    try:
        return subprocess.call(command)
    finally:
        if group is not None:
            os.killpg(group, signal.SIGCONT)
            with open(args.work_dir / "pauses.jsonl", "a") as f:
                f.write(json.dumps({"start": start, "end": time.time(), "command": command}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
