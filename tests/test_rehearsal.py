"""Tests for ceremony.rehearsal: one command ends in a verified archive; drills stop in time."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile

import pytest

from ceremony.evidence import verify_path
from ceremony.evidence.secrets import scan_archive, scan_tree
from ceremony.rehearsal import DRILLS
from tests.workbook_support import PINS, ROOT, clean_env, events, shared_rehearsal

PHASE_NUMBERS = ["00", "01", "02", "03", "04", "05"]
# The phases in the order the two sides ran them: each side preflights itself.
SIDED = [("00", "online"), ("01", "online"), ("00", "offline"), ("02", "offline")]
SIDED += [("03", "offline"), ("04", "online"), ("05", "online")]
SIDED_NUMBERS = [number for number, _ in SIDED]


@pytest.fixture(scope="session")
def rehearsal():
    done = shared_rehearsal()
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_rehearsal_ends_with_a_verified_archive(rehearsal):
    assert "Rehearsal complete and verified." in rehearsal.stdout
    assert f"Evidence archive: {rehearsal.archive}" in rehearsal.stdout
    report = verify_path(rehearsal.archive)
    assert report.verified, report.first_failure


def test_archive_digests_match_its_manifest_independently(rehearsal):
    """Recompute every digest with hashlib from the tar itself, not through the verifier."""
    with tarfile.open(rehearsal.archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    sums = members["evidence/SHA256SUMS"].decode().splitlines()
    assert len(sums) > 20
    for line in sums:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(members[name]).hexdigest() == digest, name
    for expected in ("plan.toml", "transcript.jsonl", "kek.pem", "notebooks/02_generate.ipynb"):
        assert expected in members
    assert {f"keys/rehearsal-{k}.byok" for k in ("rsa", "ec", "aes")} <= set(members)


def test_every_phase_completed_and_confirmed_automatically(rehearsal):
    found = events(rehearsal.workspace)
    completed = [e["phase"] for e in found if e["action"] == "phase-completed"]
    confirmed = [e for e in found if e["action"] == "checkpoint-confirmed"]
    assert completed == SIDED_NUMBERS
    assert [e["phase"] for e in confirmed] == SIDED_NUMBERS
    assert all(e["data"]["automatic"] is True for e in confirmed)
    assert all(e["data"]["witnesses"] == ["wanda"] for e in confirmed)


def test_aes_key_proven_by_the_vault_unwrapping_the_hsm_challenge(rehearsal):
    """Phase 03 (HSM) wraps a challenge; phase 04 (vault only) unwraps it; the digests agree."""
    keys, name = rehearsal.workspace / "keys", "rehearsal-aes"
    challenge_file = (keys / f"{name}.challenge.json").read_bytes()
    challenge = json.loads(challenge_file)
    proof = json.loads((keys / f"{name}.import.json").read_text())["proof"]
    assert proof["method"] == "unwrap" and proof["algorithm"] == "CKM_AES_KEY_WRAP"
    assert proof["wrapped"] == challenge["wrapped"]
    answer = hashlib.sha256(bytes.fromhex(proof["unwrapped"])).hexdigest()
    assert answer == challenge["challenge_sha256"] == proof["challenge_sha256"]
    found = events(rehearsal.workspace)
    (wrapped,) = [e for e in found if e["action"] == "phase-completed" and e["phase"] == "03"]
    confirmed = {i["label"]: i["sha256"] for i in wrapped["data"]["checkpoint"]}
    assert confirmed[f"keys/{name}.challenge.json"] == hashlib.sha256(challenge_file).hexdigest()
    # The SDK never tried an AES operation locally (it would have, with A128KW..A256KW).
    upload = (rehearsal.workspace / "notebooks/04_upload.ipynb").read_text()
    for text in (rehearsal.stdout, rehearsal.stderr, upload):
        assert "operation failed" not in text


def test_phase_kernels_ran_over_ipc(rehearsal):
    started = [e for e in events(rehearsal.workspace) if e["action"] == "phase-started"]
    assert [e["phase"] for e in started] == SIDED_NUMBERS
    assert {e["data"]["kernel"] for e in started} == {"ipc"}


def test_no_pin_or_key_material_in_workspace_or_archive(rehearsal):
    pins = list(PINS.values())
    assert scan_tree(rehearsal.workspace, pins) == []
    assert scan_archive(rehearsal.archive, pins) == []
    # The raw PINs appear nowhere under the rehearsal directory, tokens and vault included.
    for path in rehearsal.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(pin.encode() in data for pin in pins), path
    assert not any(pin in rehearsal.stdout + rehearsal.stderr for pin in pins)


def test_rehearsal_refuses_to_overwrite(rehearsal):
    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "rehearse", "--out", str(rehearsal.root)],
        env=clean_env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "not empty" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def drills(tmp_path_factory):
    """All four drills, run side by side (each stops early, at its own checkpoint)."""
    base = tmp_path_factory.mktemp("drills")
    running = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ceremony",
                "rehearse",
                "--out",
                str(base / name),
                "--drill",
                name,
            ],
            env=clean_env(**PINS),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in DRILLS
    }
    results = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=600)
        results[name] = (process.returncode, stdout, stderr, base / name / "workspace")
    return results


@pytest.mark.parametrize("name", sorted(DRILLS))
def test_drill_stops_at_its_checkpoint(drills, name):
    code, stdout, stderr, workspace = drills[name]
    drill = DRILLS[name]
    assert code != 0
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"ceremony: error: Drill {name}: the ceremony stopped at phase")
    assert f"phase {drill.stops_at}, as it must" in last and "Traceback" not in stderr
    assert "What the drill teaches:" in stdout
    found = events(workspace)
    refusals = [e for e in found if e["action"] in ("phase-refused", "phase-failed")]
    assert [e["phase"] for e in refusals] == [drill.stops_at]
    assert refusals[0]["data"]["message"]
    completed = [e["phase"] for e in found if e["action"] == "phase-completed"]
    assert completed == SIDED_NUMBERS[: SIDED_NUMBERS.index(drill.stops_at)]
    assert not (workspace / "archive.tar").exists()


def test_each_checkpoint_shows_every_value_its_notebook_asks_to_compare(rehearsal):
    """Every term the checkpoint text sets in bold is a value the checkpoint itself displays."""
    import re

    import nbformat

    from ceremony.phases import PHASES
    from ceremony.runner import checkpoint_of
    from ceremony.transcript import Transcript

    sealed, after = rehearsal.workspace / "transcript.jsonl", rehearsal.workspace / ".after-seal"
    found = Transcript(sealed).events() + Transcript(after / "transcript.jsonl").events()
    completed = {e.phase: e for e in found if e.action == "phase-completed"}
    for phase in PHASES:
        notebook = nbformat.read(ROOT / "notebooks" / phase.notebook, as_version=4)
        (text,) = [
            c.source
            for c in notebook.cells
            if c.cell_type == "markdown" and c.source.startswith("## Checkpoint")
        ]
        # The bulleted list: what the witnesses compare, each bullet naming its values in bold.
        bullets = re.findall(r"^- .*(?:\n  .*)*", text, flags=re.MULTILINE)
        assert bullets and all("**" in b for b in bullets), phase.notebook
        shown = checkpoint_of(phase, completed[phase.number]).render_text(qr=False).lower()
        for term in re.findall(r"\*\*(.+?)\*\*", "\n".join(bullets)):
            assert term.strip("`").lower() in shown, f"{phase.notebook}: {term!r} is not shown"


def test_rehearsal_opens_no_tcp_listener_but_the_local_vault(rehearsal):
    """The kernels run on IPC sockets only: no IOPub pipe or other TCP listener of theirs."""
    from urllib.parse import urlsplit

    from ceremony.plan import load_plan

    vault_port = urlsplit(load_plan(rehearsal.root / "plan.toml").vault.url).port
    assert (rehearsal.pid, vault_port) in rehearsal.listened  # the watcher did see sockets
    assert {port for _, port in rehearsal.listened} == {vault_port}
    assert {pid for pid, _ in rehearsal.listened} == {rehearsal.pid}


def test_preflight_and_report_list_the_token_they_describe(rehearsal):
    """The evidence names the HSM token it described in its token list, never an empty one."""
    online = json.loads((rehearsal.workspace / "preflight.json").read_text())
    assert online["host"]["side"] == "online" and online["hsm"] == {}
    (offline,) = rehearsal.workspace.glob("preflight-*.json")
    preflight = json.loads(offline.read_text())
    assert preflight["host"]["side"] == "offline"
    hsm = preflight["hsm"]
    assert hsm["token"]["label"] == "byok-rehearsal"
    assert hsm["tokens"] == [hsm["token"]]
    assert "verdict" in preflight["self_test"]
    report = (rehearsal.workspace / "evidence" / "report.html").read_text()
    assert "<th>HSM tokens</th><td>[]</td>" not in report
    assert "byok-rehearsal" in report


def test_a_key_file_signer_beside_the_plan_signs_from_the_kernel(rehearsal):
    """chen's signer is `file:people/chen.key`, relative to the plan; the phase 05 kernel, working
    in the workspace, still finds it, and chen's signature counts for the quorum."""
    plan = (rehearsal.root / "plan.toml").read_text()
    assert 'signer = "file:people/chen.key"' in plan
    assert (rehearsal.root / "people" / "chen.key").stat().st_mode & 0o777 == 0o600
    assert not (rehearsal.workspace / "people" / "chen.key").exists()
    (sealing,) = [e for e in events(rehearsal.workspace) if e["action"] == "sealing"]
    assert sealing["data"] == {"signers": ["ada", "carol", "chen", "wanda"], "absent": {}}
    assert "chen" in verify_path(rehearsal.archive).signed_by
