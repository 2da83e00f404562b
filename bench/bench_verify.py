"""bench_verify: time `verify_path` on an archive holding 100 keys against sha256sum of its bytes.

Run: python -m bench.bench_verify [--keys N] [--notebook-bytes B]. Target: verify <= 3x sha256sum.
Builds a throwaway workspace in a temporary directory with pyca/cryptography keys (no HSM needed).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ceremony.evidence import build_evidence, verify_path
from tests.evidence_workspace import CEREMONY_TIME, make_people, make_workspace

TARGET_RATIO = 3.0


def _key_specs(count: int) -> list[tuple[str, str, int | str]]:
    """A mix like a real estate of keys: RSA-2048 and EC P-256 signing keys, AES-256 keys."""
    kinds = (("RSA-HSM", 2048), ("EC-HSM", "P-256"), ("oct-HSM", 256))
    return [(f"key-{n:03d}", *kinds[n % 3]) for n in range(count)]


def _best_interleaved(runs: int, *actions) -> list[float]:
    """Best time of each action over `runs` rounds, alternating them so that both see the same
    machine load (other work on the machine only ever slows a run down)."""
    best = [float("inf")] * len(actions)
    for _ in range(runs):
        for index, action in enumerate(actions):
            start = time.perf_counter()
            action()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def run(keys: int, notebook_bytes: int, runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "workspace"
        make_workspace(root, _key_specs(keys), notebook_bytes=notebook_bytes)
        people, quorum = make_people(Path(tmp) / "signing-keys", root)
        result = build_evidence(root, people, quorum, ceremony_time=CEREMONY_TIME)
        archive = result.archive_path
        size = archive.stat().st_size
        sha256sum = shutil.which("sha256sum") or "sha256sum"

        def verify() -> None:
            report = verify_path(archive)
            assert report.verified, report.first_failure

        def coreutils() -> None:
            subprocess.run([sha256sum, str(archive)], check=True, capture_output=True)

        verify_time, sum_time, hashlib_time = _best_interleaved(
            runs, verify, coreutils, lambda: hashlib.sha256(archive.read_bytes()).hexdigest()
        )
        ratio = verify_time / sum_time
        print(f"archive: {keys} keys, {len(verify_path(archive).checks)} checks, {size:,} bytes")
        print(f"verify_path:        {verify_time * 1000:8.2f} ms (best of {runs})")
        print(f"sha256sum (process):{sum_time * 1000:8.2f} ms (best of {runs})")
        print(f"hashlib.sha256:     {hashlib_time * 1000:8.2f} ms (best of {runs}, reference)")
        verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
        print(f"ratio verify/sha256sum: {ratio:.2f}x ({verdict} the {TARGET_RATIO:g}x target)")
        return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument(
        "--notebook-bytes",
        type=int,
        default=300_000,
        help="output size of each of the three executed notebooks in the workspace",
    )
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    run(args.keys, args.notebook_bytes, args.runs)


if __name__ == "__main__":
    main()
