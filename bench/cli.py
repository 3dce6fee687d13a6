"""CLI start-up benchmark: wall time of `linkflow --help`, `linkflow --version` and
`linkflow run` of a 3-node workflow, each a fresh process as a user starts it.

Target (issue 14): `linkflow run` of a 3-node workflow under 0.8 s on a 2-core machine;
`--help` near-instant. Each command runs once to warm the page cache, then `--rounds`
times; the minimum, median and maximum are printed (the machines are shared: quote the
median).

    python bench/cli.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREE_NODES = {
    "name": "bench-cli",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "check", "type": "if", "parameters": {"condition": "{{ json.n > 1 }}"}},
        {"id": "done", "type": "set", "parameters": {"fields": {"msg": "n is {{ json.n }}"}}},
    ],
    "connections": [
        {"from": "start", "to": "check"},
        {"from": "check", "output": "true", "to": "done"},
    ],
}


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        workflow = workdir / "three.json"
        workflow.write_text(json.dumps(THREE_NODES))
        linkflow = [sys.executable, "-m", "linkflow"]
        commands = {
            "linkflow --help": [*linkflow, "--help"],
            "linkflow --version": [*linkflow, "--version"],
            "linkflow run (3 nodes)": [*linkflow, "run", str(workflow), "--input", '{"n": 2}'],
        }
        print(f"{'command':<24} {'min s':>7} {'median s':>9} {'max s':>7}  ({rounds} rounds)")
        for name, command in commands.items():
            try:
                timed(command, workdir)  # warm-up: page cache, .pyc files
            except SystemExit as failed:
                print(f"{name:<24} skipped: {str(failed).splitlines()[0]}")
                continue
            times = [timed(command, workdir) for _ in range(rounds)]
            print(f"{name:<24} {min(times):7.3f} {statistics.median(times):9.3f} "
                  f"{max(times):7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
