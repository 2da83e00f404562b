"""Signers bound to the plan, the auditor's anchors, and loud rehearsals (the plain verifier and
every anchor must refuse an archive re-sealed by other keys under the same names)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ceremony.errors import PlanError, RefusedError
from ceremony.evidence import build_evidence, verify_path
from ceremony.evidence import seal as seal_module
from ceremony.evidence.anchors import ReviewedPlan
from ceremony.fingerprint import Fingerprint
from ceremony.plan import load_plan
from ceremony.transcript import Transcript, read_events
from tests.evidence_workspace import CEREMONY_TIME, enrol, make_people, make_workspace, plan_text
from tests.fixtures_evidence import SealedCeremony


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args], capture_output=True, text=True, check=False
    )


def _unsealed_copy(sealed: SealedCeremony, target: Path) -> Path:
    shutil.copytree(sealed.root, target)
    shutil.rmtree(target / "evidence")
    (target / "archive.tar").unlink()
    return target


def _checkpoint_head(root: Path, phase: str) -> Fingerprint:
    events = read_events((root / "transcript.jsonl").read_bytes())
    head = next(e.line_sha256 for e in events if e.phase == phase and e.action == "phase-completed")
    return Fingerprint(bytes.fromhex(head))


def test_seal_refuses_signers_whose_keys_are_not_the_plans(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    root = _unsealed_copy(sealed_ceremony, tmp_path / "ws")
    strangers, quorum = make_people(tmp_path / "strangers")
    with pytest.raises(
        RefusedError, match=r"alice's key .* is not the key the plan names for alice"
    ):
        build_evidence(root, strangers, quorum, ceremony_time=CEREMONY_TIME)
    assert not (root / "evidence").exists() and not (root / "archive.tar").exists()


def test_a_resigned_archive_fails_plain_verify_naming_the_person(
    sealed_ceremony: SealedCeremony, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack from the issue: evidence/ deleted, re-sealed by four unrelated keys under the
    # same names, with a tool that does not check the plan.
    root = _unsealed_copy(sealed_ceremony, tmp_path / "ws")
    strangers, quorum = make_people(tmp_path / "strangers")
    monkeypatch.setattr(seal_module, "_require_planned", lambda *args: None)
    with pytest.raises(Exception, match="is not the key the plan names for"):
        build_evidence(root, strangers, quorum, ceremony_time=CEREMONY_TIME)
    monkeypatch.undo()
    report = verify_path(root)
    assert not report.verified and report.signed_by == []
    roster = [c.detail for c in report.failed if c.check == "roster"]
    assert any(d.startswith("alice's key ") and "not the key the plan names for alice" in d
               for d in roster)  # fmt: skip
    done = _cli("verify", str(root))
    assert done.returncode == 1 and "NOT VERIFIED: alice: alice's key" in done.stdout


@pytest.fixture(scope="module")
def forged(sealed_ceremony: SealedCeremony, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stronger forgery: the plan's keys replaced in the archive as well (people/ and a
    rewritten transcript whose checkpoint 00 shows the strangers' keys). Self-consistent."""
    base = tmp_path_factory.mktemp("forged")
    root = _unsealed_copy(sealed_ceremony, base / "ws")
    strangers, quorum = make_people(base / "strangers")
    for person in strangers:
        (root / f"people/{person.name}.pub.pem").write_text(person.public_key_pem)
    events = read_events((root / "transcript.jsonl").read_bytes())
    (root / "transcript.jsonl").unlink()
    transcript = Transcript(root / "transcript.jsonl")
    for event in events:
        if event.phase != "00" or event.action != "phase-completed":
            transcript.append(event.phase, event.actor, event.action, event.data)
    enrol(root, strangers, quorum)  # their plan: the same names and roles, other key files
    build_evidence(root, strangers, quorum, ceremony_time=CEREMONY_TIME)
    return root / "archive.tar"


def test_a_fully_forged_archive_fails_every_anchor(
    sealed_ceremony: SealedCeremony, forged: Path
) -> None:
    genuine_root = sealed_ceremony.root
    genuine = sealed_ceremony.result.archive_path
    assert verify_path(forged).verified  # the archive alone cannot tell
    plan = str(genuine_root / "plan.toml")  # the reviewed plan, public keys in people/ beside it
    digest = sealed_ceremony.result.archive_sha256
    head = _checkpoint_head(genuine_root, "00")
    words = " ".join(head.word_list[:2])
    spaced_hex = head.short[:9].lower()  # "abcd ef01": 8 hex digits, spaces and case ignored

    for anchor, args in (
        ("--plan", ["--plan", plan]),
        ("--expect-sha256", ["--expect-sha256", digest]),
        ("--expect-head 00", ["--expect-head", f"00={words}"]),
        ("--expect-head 00", ["--expect-head", f"00={spaced_hex}"]),
    ):
        done = _cli("verify", str(forged), *args)
        assert done.returncode == 1, (args, done.stdout)
        failing = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        assert any(anchor in line for line in failing), (anchor, failing)
        assert done.stdout.splitlines()[-1].startswith("This verdict rests on the archive and ")
        done = _cli("verify", str(genuine), *args)
        assert done.returncode == 0, (args, done.stdout)

    done = _cli("verify", str(genuine), "--plan", plan, "--expect-sha256", digest.upper(),
                "--expect-head", f"00={words}")  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == (
        f"This verdict rests on the archive and the reviewed plan {plan} and its keys; the paper "
        "record (the archive's SHA-256, checkpoint 00's head)."
    )
    done = _cli("verify", str(forged), "--plan", plan)
    assert "alice's key" in done.stdout and "is not the reviewed plan's" in done.stdout


def test_rehearsal_and_exceptions_are_loud(sealed_ceremony: SealedCeremony) -> None:
    archive = str(sealed_ceremony.result.archive_path)
    done = _cli("verify", archive)
    lines = done.stdout.splitlines()
    assert done.returncode == 0
    verdict = next(i for i, line in enumerate(lines) if line.startswith("VERIFIED"))
    assert lines.index("REHEARSAL: this archive records a rehearsal, not a production ceremony.") \
        < verdict  # fmt: skip
    exceptions = [i for i, line in enumerate(lines) if line.startswith("EXCEPTION: ")]
    assert exceptions and max(exceptions) < verdict
    assert any("SoftHSM2 zero-pads" in lines[i] for i in exceptions)
    as_json = json.loads(_cli("verify", archive, "--json").stdout)
    assert as_json["rehearsal"] is True and any("zero-pads" in e for e in as_json["exceptions"])
    done = _cli("verify", archive, "--production")
    assert done.returncode == 1
    assert "NOT VERIFIED: --production: a rehearsal and 1 recorded exception(s)" in done.stdout


def test_a_production_archive_passes_production(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, [("only-ec", "EC-HSM", "P-256")], rehearsal=False)
    people, quorum = make_people(tmp_path / "keys", root)
    result = build_evidence(root, people, quorum, ceremony_time=CEREMONY_TIME)
    done = _cli("verify", str(result.archive_path), "--production", "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["rehearsal"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expect-head", "03"], "does not start with a phase number"),
        (["--expect-head", "03=abc"], "neither 8+ hex digits nor the first 2+ PGP words"),
        (["--expect-head", "03=aardvark"], "neither 8+ hex digits"),
        (["--expect-head", "05=aardvark adroitness"], "wrote there with --expect-sha256"),
        (["--expect-sha256", "abc123"], "is not 64 hex digits"),
        (["--plan", "README.md"], "is not valid TOML"),
        (["--plan", "missing.toml"], "Cannot read the plan"),
    ],
)
def test_bad_anchors_are_one_sentence(
    sealed_ceremony: SealedCeremony, args: list[str], message: str
) -> None:
    done = _cli("verify", str(sealed_ceremony.result.archive_path), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_reviewed_plan_whose_keys_have_expired_still_anchors(tmp_path: Path) -> None:
    # Years later the keys' expiry dates have passed; the plan is still the plan.
    people, quorum = make_people(tmp_path / "keys")
    (tmp_path / "people").mkdir()
    for person in people:
        (tmp_path / f"people/{person.name}.pub.pem").write_text(person.public_key_pem)
    text = plan_text(people, quorum).replace(
        'key_ops = ["sign"]\n', 'key_ops = ["sign"]\nexpires = 2020-01-01T00:00:00Z\n', 1
    )
    (tmp_path / "plan.toml").write_text(text)
    with pytest.raises(PlanError, match="expires"):
        load_plan(tmp_path / "plan.toml")
    reviewed = ReviewedPlan.load(tmp_path / "plan.toml")
    assert reviewed.content == text.encode()
    assert reviewed.keys == {p.name: p.fingerprint.hex for p in people}
