"""bench_rehearsal: a whole two-sided `ceremony rehearse` against its floor, both measured in the
same run.

The floor is what no two-sided rehearsal can avoid: one process executing seven empty notebooks
with papermill (the same IPC kernels; each side runs its own phase 00) plus generating the same
three keys bare in SoftHSM2 with python-pkcs11 (generation only). Target: the rehearsal takes at
most 1.5x the floor.
Run: python -m bench.bench_rehearsal [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

TARGET = 1.5
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = 7  # phases 00-05, and the second side's own phase 00

# The bare key generation, in its own process (one SoftHSM2 directory per process).
KEYGEN = r"""
import os, subprocess, sys, time
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism
from ceremony.softhsm import SoftHsm
softhsm = SoftHsm(sys.argv[1])
softhsm.create_token("bench", "1234")
softhsm.activate()
token = pkcs11.lib(softhsm.module_path).get_token(token_label="bench")
with token.open(rw=True, user_pin="1234") as session:
    start = time.perf_counter()
    session.generate_keypair(KeyType.RSA, 3072, store=True, label="rsa")
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107")}, local=True
    )
    params.generate_keypair(store=True, label="ec")
    session.generate_key(KeyType.AES, 256, store=True, label="aes")
    print(time.perf_counter() - start)
"""


def empty_notebook(path: Path) -> Path:
    """A notebook with the workbook's parameters cell and one cell that does nothing."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('plan = ""\nworkspace = ""\nmode = "rehearsal"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("pass")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


NOTEBOOK_RUN = r"""
import sys
import papermill
from ceremony.kernel import kernel_config
for n in range(int(sys.argv[2])):
    papermill.execute_notebook(
        sys.argv[1], f"{sys.argv[1]}.{n}.out.ipynb",
        parameters={"plan": "p", "workspace": "w", "mode": "rehearsal"},
        kernel_name="python3", progress_bar=False, **kernel_config(),
    )
"""


def floor_notebooks(folder: Path) -> float:
    """Wall time of one fresh process executing six empty notebooks with papermill, on IPC
    kernels: interpreter start and imports included, as in the rehearsal's own process."""
    source = empty_notebook(folder / "empty.ipynb")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", NOTEBOOK_RUN, str(source), str(NOTEBOOKS)],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def floor_keygen(folder: Path) -> float:
    """Seconds python-pkcs11 needs to generate RSA-3072, EC P-256 and AES-256 in SoftHSM2."""
    done = subprocess.run(
        [sys.executable, "-c", KEYGEN, str(folder / "softhsm")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(done.stdout.strip().splitlines()[-1])


def rehearsal(folder: Path) -> float:
    """Wall time of the whole command, from process start to verified archive."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "rehearse", "--out", str(folder / "rehearsal")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench_rehearsal: the rehearsal failed:\n{done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_rehearsal")
    parser.add_argument("--runs", type=int, default=1, help="repetitions (median reported)")
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {"rehearsal": [], "notebooks": [], "keygen": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-rehearsal-") as tmp:
            folder = Path(tmp)
            (folder / "nb").mkdir()
            runs["notebooks"].append(floor_notebooks(folder / "nb"))
            runs["keygen"].append(floor_keygen(folder))
            runs["rehearsal"].append(rehearsal(folder))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()))
    median = {k: statistics.median(v) for k, v in runs.items()}
    floor = median["notebooks"] + median["keygen"]
    ratio = median["rehearsal"] / floor
    print(
        f"two-sided rehearsal {median['rehearsal']:.2f}s; floor {floor:.2f}s "
        f"({NOTEBOOKS} empty notebooks {median['notebooks']:.2f}s + bare key generation "
        f"{median['keygen']:.2f}s); ratio {ratio:.2f}x (target <= {TARGET}x): "
        f"{'OK' if ratio <= TARGET else 'OVER TARGET'}"
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
