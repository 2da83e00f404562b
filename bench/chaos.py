"""chaos: kill rehearsals at seeded points in every phase, resume them, and check what is left.

A crash point is (transcript line k, extra delay): the whole process group of `ceremony rehearse`
gets SIGKILL once its transcript holds k lines and the delay has passed, so kills land on and
between steps: inside key generation, between wrapping and writing a .byok, between an import
request and its answer, while sealing, while the archive is written. Then
`ceremony rehearse --resume`, and checks that do not rest on the rehearsal's own bookkeeping:

- `ceremony verify ARCHIVE --plan PLAN` verifies it (the verifier reads only those two files);
- the HSM token, listed over PKCS#11 by OpenSC's pkcs11-tool, holds each planned key once;
- the vault, listed through the Azure SDK, holds exactly one version of each key;
- every JSON member of the archive parses whole with the standard library (nothing partial sealed).

Run: python -m bench.chaos [--points 40] [--seed S]; the last line is the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = 81  # transcript lines of a whole two-sided rehearsal up to "sealed" (the archive is before)
MAX_DELAY = 0.5  # seconds after line k, so that kills also land between two recorded steps
HSM_TOKEN = "byok-rehearsal"


@dataclass(frozen=True)
class CrashPoint:
    line: int
    delay: float

    def __str__(self) -> str:
        return f"after line {self.line} +{self.delay * 1000:.0f} ms"


@dataclass
class Outcome:
    point: CrashPoint
    killed_at: str = ""  # the last transcript line's phase and action when the kill landed
    resumed: bool = False
    verified: bool = False
    duplicate_keys: int = 0
    duplicate_versions: int = 0
    lost: int = 0
    partial: list[str] | None = None
    problem: str = ""

    @property
    def good(self) -> bool:
        clean = not (self.duplicate_keys or self.duplicate_versions or self.lost or self.partial)
        return self.resumed and self.verified and clean


def crash_points(count: int, seed: int) -> list[CrashPoint]:
    """`count` points spread evenly over the transcript (one per stratum), jittered by the seed."""
    rng = random.Random(seed)
    return [
        CrashPoint(1 + int((i + rng.random()) * LINES / count), round(rng.uniform(0, MAX_DELAY), 3))
        for i in range(count)
    ]


def clean_env() -> dict[str, str]:
    """No PINs, Azure credentials or SoftHSM directory from outside: the rehearsal makes its own
    and keeps them for --resume."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CEREMONY_PIN", "AZURE_")) and k != "SOFTHSM2_CONF"
    }


def newest_lines(root: Path) -> list[dict]:
    """The transcript of whichever side's folder holds the latest state of the workspace."""
    sides = (root / "workspace", root / "offline" / "workspace")
    return max((transcript_lines(side) for side in sides), key=len)


def transcript_lines(workspace: Path) -> list[dict]:
    found = []
    for path in (workspace / "transcript.jsonl", workspace / ".after-seal" / "transcript.jsonl"):
        if path.exists():
            found += [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]
    return found


def crash(root: Path, point: CrashPoint, timeout: float = 300) -> str:
    """Start a rehearsal in ROOT and SIGKILL its process group at POINT; where it landed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ceremony", "rehearse", "--out", str(root)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while len(newest_lines(root)) < point.line:
            if process.poll() is not None or time.monotonic() > deadline:
                return "(the rehearsal ended first)"
            time.sleep(0.02)
        time.sleep(point.delay)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    lines = newest_lines(root)
    # A phase's notebook-kept line comes after the next phase started: name the running phase.
    running = [e["phase"] for e in lines if e["action"] in ("phase-started", "sealed")]
    return f"phase {running[-1] if running else '-'}, after {lines[-1]['action']}"


def planned_objects(plan: Path) -> Counter[str]:
    """Token objects per label the plan asks for: a key pair is two objects, a secret key one."""
    keys = tomllib.loads(plan.read_text())["keys"]
    return Counter({k["name"]: 1 if k["type"].startswith("oct") else 2 for k in keys})


def token_objects(root: Path, pin: str) -> Counter[str]:
    """Object labels on the rehearsal's key token, listed by OpenSC's pkcs11-tool."""
    from ceremony.softhsm import find_module

    done = subprocess.run(
        ["pkcs11-tool", "--module", find_module(), "--token-label", HSM_TOKEN, "--login",
         "--pin", pin, "--list-objects"],
        env={**os.environ, "SOFTHSM2_CONF": str(root / "softhsm" / "softhsm2.conf")},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Counter(
        line.split(":", 1)[1].strip()
        for line in done.stdout.splitlines()
        if line.strip().startswith("label:")
    )


def vault_versions(root: Path) -> dict[str, int]:
    """Versions per key in the rehearsal's vault, listed through the Azure SDK."""
    from ceremony.localvault import LocalVault

    with LocalVault(root / "vault", managed_hsm=True) as vault:
        client = vault.key_client()
        names = [p.name for p in client.list_properties_of_keys()]
        return {n: len(list(client.list_properties_of_key_versions(n))) for n in names}


def partial_members(archive: Path) -> list[str]:
    """Archive members that are cut short: JSON that does not parse, a JSON line that does not."""
    bad = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else b""
            try:
                if member.name.endswith((".json", ".byok")):
                    json.loads(data)
                elif member.name.endswith(".jsonl"):
                    for line in data.splitlines():
                        json.loads(line)
            except ValueError:
                bad.append(member.name)
    return bad


def ceremony(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args],
        env=clean_env(), capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip


def run_point(root: Path, point: CrashPoint) -> Outcome:
    """Crash, resume, check."""
    outcome = Outcome(point, killed_at=crash(root, point))
    resumed = ceremony("rehearse", "--out", str(root), "--resume")
    outcome.resumed = resumed.returncode == 0
    if not outcome.resumed:
        outcome.problem = (resumed.stderr.strip().splitlines() or ["no message"])[-1]
    archive, plan = root / "workspace" / "archive.tar", root / "plan.toml"
    if archive.exists():
        verified = ceremony("verify", str(archive), "--plan", str(plan))
        outcome.verified = verified.returncode == 0
        if not outcome.verified and not outcome.problem:
            outcome.problem = "verify: " + (verified.stdout.strip().splitlines() or [""])[0]
        outcome.partial = partial_members(archive)
    outcome.duplicate_keys, outcome.duplicate_versions, outcome.lost = count_keys(root)
    return outcome


def count_keys(root: Path) -> tuple[int, int, int]:
    """Duplicate token objects, duplicate vault versions, and planned keys missing from either."""
    planned = planned_objects(root / "plan.toml")
    pin = json.loads((root / "rehearsal-pins.json").read_text())["CEREMONY_PIN"]
    found = token_objects(root, pin)
    versions = vault_versions(root)
    duplicate_keys = sum(max(0, found[n] - planned[n]) for n in planned)
    duplicate_versions = sum(max(0, v - 1) for v in versions.values())
    lost = sum(1 for n in planned if found[n] < planned[n] or versions.get(n, 0) < 1)
    return duplicate_keys, duplicate_versions, lost


def describe(index: int, total: int, outcome: Outcome) -> str:
    verdict = (
        "resumed and verified" if outcome.good else f"FAILED: {outcome.problem or 'see counts'}"
    )
    counts = (
        f"dup keys {outcome.duplicate_keys}, dup versions {outcome.duplicate_versions}, "
        f"lost {outcome.lost}, partial {len(outcome.partial or [])}"
    )
    return f"point {index}/{total} {outcome.point} ({outcome.killed_at}): {verdict}; {counts}"


def sweep(
    points: list[CrashPoint], seed: int, work: Path, say: Callable[[str], None] = print
) -> list[Outcome]:
    """Run every point in its own folder under WORK; a failed one's folder is kept."""
    outcomes = []
    for index, point in enumerate(points, start=1):
        root = work / f"point-{index:02d}"
        outcome = run_point(root / "r", point)
        outcomes.append(outcome)
        say(describe(index, len(points), outcome))
        if outcome.good:
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"  kept for inspection: {root}")
    say(summary(outcomes, seed))
    return outcomes


def summary(outcomes: list[Outcome], seed: int) -> str:
    return (
        f"chaos: {len(outcomes)} crash points (seed {seed}): "
        f"{sum(o.good for o in outcomes)} resumed and verified, "
        f"{sum(o.duplicate_keys for o in outcomes)} duplicate keys, "
        f"{sum(o.duplicate_versions for o in outcomes)} duplicate versions, "
        f"{sum(o.lost for o in outcomes)} lost"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=40, help="crash points (default 40)")
    parser.add_argument("--seed", type=int, help="seed of the crash points (default: random)")
    parser.add_argument("--work", type=Path, help="directory for the runs (default: a temp dir)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"chaos: {args.points} crash points from seed {seed} (rerun with --seed {seed})")
    work = args.work or Path(tempfile.mkdtemp(prefix="ceremony-chaos-"))
    outcomes = sweep(crash_points(args.points, seed), seed, work)
    return 0 if all(o.good for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
