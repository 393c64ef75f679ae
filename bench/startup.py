"""Start-up time of ``python -m bot --help`` and ``templates``, as ratios to a bare interpreter.

Target (issue 9): both at most 5× ``python -c pass``. Each command runs several
times and the fastest run counts, which is the least disturbed by other work on
the machine. Numbers, not assertions. Run: ``.venv/bin/python bench/startup.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 15
TARGET = 5.0


def fastest(argv: list[str], env: dict[str, str]) -> float:
    """The quickest of ``RUNS`` wall-clock runs of ``argv``, in seconds."""
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(Path(tmp) / "sendmail.db"),
            "TEMPLATES_DIR": str(ROOT / "templates"),
        }
        bare = fastest([sys.executable, "-c", "pass"], env)
        print(f"bare interpreter: {bare * 1000:.0f} ms")
        for args in (["--help"], ["templates"]):
            took = fastest([sys.executable, "-m", "bot", *args], env)
            ratio = took / bare
            verdict = "ok" if ratio <= TARGET else "OVER"
            print(
                f"python -m bot {' '.join(args)}: {took * 1000:.0f} ms = {ratio:.1f}x bare "
                f"(target <= {TARGET:g}x: {verdict})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
