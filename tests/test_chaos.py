"""The crash sweep of `make chaos`, sampled: rehearsals killed at seeded points over the phases,
resumed, and checked over PKCS#11, the Azure SDK and `ceremony verify`. The checks themselves are
shown to see a planted duplicate key, a second vault version and a cut archive member."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from itertools import pairwise
from pathlib import Path

import pytest

from bench.chaos import (
    HSM_TOKEN,
    LINES,
    count_keys,
    crash_points,
    describe,
    partial_members,
    run_point,
    summary,
)

SAMPLE = 6
SEED = int(os.environ.get("CEREMONY_CHAOS_SEED", "14"))


def test_crash_points_are_spread_over_the_transcript_and_follow_the_seed() -> None:
    points = crash_points(40, 7)
    assert points == crash_points(40, 7) and points != crash_points(40, 8)
    assert all(1 <= p.line <= LINES for p in points)
    lines = sorted(p.line for p in points)
    assert lines[0] <= 3 and lines[-1] >= LINES - 2  # first steps and the sealing both reached
    assert max(b - a for a, b in pairwise(lines)) <= 2 * LINES // 40 + 1


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, object]]:
    work = tmp_path_factory.mktemp("chaos")
    runs = []
    for index, point in enumerate(crash_points(SAMPLE, SEED), start=1):
        root = work / f"point-{index}" / "r"
        outcome = run_point(root, point)
        print(describe(index, SAMPLE, outcome))
        runs.append((root, outcome))
    return runs


def test_sampled_crashes_resume_and_verify_with_one_key_and_version_each(sampled) -> None:
    outcomes = [outcome for _, outcome in sampled]
    last_line = summary(outcomes, SEED)
    print(last_line)
    assert last_line == (
        f"chaos: {SAMPLE} crash points (seed {SEED}): {SAMPLE} resumed and verified, "
        "0 duplicate keys, 0 duplicate versions, 0 lost"
    ), [describe(i, SAMPLE, o) for i, o in enumerate(outcomes, start=1)]
    assert all(o.partial == [] for o in outcomes)
    # The kills landed in different phases, not all at one spot.
    phases = {o.killed_at.split(",")[0] for o in outcomes}
    assert len(phases) >= 4, phases


def test_the_checks_see_a_second_key_and_a_second_version(sampled) -> None:
    from ceremony.localvault import LocalVault
    from ceremony.softhsm import find_module

    root = sampled[-1][0]
    assert count_keys(root) == (0, 0, 0)
    pin = json.loads((root / "rehearsal-pins.json").read_text())["CEREMONY_PIN"]
    subprocess.run(
        ["pkcs11-tool", "--module", find_module(), "--token-label", HSM_TOKEN, "--login",
         "--pin", pin, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "rehearsal-ec"],
        env={**os.environ, "SOFTHSM2_CONF": str(root / "softhsm" / "softhsm2.conf")},
        capture_output=True, check=True,
    )  # fmt: skip
    with LocalVault(root / "vault", managed_hsm=True) as vault:
        vault.key_client().create_ec_key("rehearsal-ec", curve="P-256", hardware_protected=True)
    assert count_keys(root) == (2, 1, 0)  # a second key pair, a second version, nothing lost


def test_a_cut_member_is_found_partial(tmp_path) -> None:
    archive = tmp_path / "archive.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in {
            "a.json": b'{"whole": true}',
            "b.byok": b'{"cut": ',
            "t.jsonl": b"{}\n{",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert partial_members(archive) == ["b.byok", "t.jsonl"]
