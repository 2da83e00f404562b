"""Run every benchmark, each in its own process: `python -m bench [NAME ...]`.

Each benchmark measures its own baseline in the same run and prints the ratio against it; a
separate process per benchmark keeps one SoftHSM2 configuration per process, as PKCS#11 requires.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    available = sorted(
        info.name
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    chosen = [f"bench_{name.removeprefix('bench_')}" for name in argv] or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)}; have {', '.join(available)}.")
        return 2
    failed = 0
    for name in chosen:
        print(f"== {name}", flush=True)
        failed += subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
