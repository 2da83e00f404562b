"""The verifier requires every planned key's whole story in the sealed transcript, naming the
archived bytes; and sealing covers every file of the workspace or refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ceremony.errors import RefusedError, VerificationError
from ceremony.evidence import build_evidence, verify_path
from ceremony.transcript import Transcript
from tests.evidence_workspace import CEREMONY_TIME, make_people, make_workspace


def _rewrite_transcript(root, change) -> None:
    """Rebuild the transcript's chain after CHANGE(list of event dicts) edited its events: what a
    forger with the medium would do, so that the chain itself still verifies."""
    path = root / "transcript.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    fresh = Transcript(path)
    for record in change(records):
        fresh.append(record["phase"], record["actor"], record["action"], record.get("data"))


def _seal(tmp_path, change):
    """Seal a workspace whose transcript CHANGE edited. Sealing itself refuses to call such an
    archive verified (it checks what it wrote); the signed archive stays for the auditor's test."""
    root = tmp_path / "workspace"
    make_workspace(root)
    _rewrite_transcript(root, change)
    people, quorum = make_people(tmp_path / "keys", root)
    with pytest.raises(VerificationError, match="does not verify"):
        build_evidence(root, people, quorum, ceremony_time=CEREMONY_TIME)
    return root / "archive.tar"


def _chain_check(archive, key):
    report = verify_path(archive)
    return next(c for c in report.checks if c.check == "chain" and c.subject == f"keys/{key}")


def test_a_whole_story_verifies_for_every_key(sealed_ceremony):
    report = verify_path(sealed_ceremony.result.archive_path)
    chains = [c for c in report.checks if c.check == "chain"]
    assert sorted(c.subject for c in chains) == ["keys/app-aes", "keys/app-ec", "keys/app-rsa"]
    assert all(c.ok for c in chains) and report.verified


def test_a_transcript_missing_a_keys_wrap_event_fails_naming_the_key(tmp_path):
    def drop(records):
        return [
            r
            for r in records
            if not (r["action"] == "key-wrapped" and r["data"]["name"] == "app-ec")
        ]

    archive = _seal(tmp_path, drop)
    check = _chain_check(archive, "app-ec")
    assert not check.ok and "no key-wrapped event" in check.detail
    assert _chain_check(archive, "app-rsa").ok
    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "verify", str(archive)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "keys/app-ec" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("field", ["byok_sha256", "sha256"])
def test_events_that_point_at_other_bytes_fail(tmp_path, field):
    def point_elsewhere(records):
        for r in records:
            if (
                r["action"] in ("key-wrapped", "aes-challenge-wrapped")
                and r["data"]["name"] == "app-aes"
            ):
                r["data"][field] = r["data"].get(field) and "0" * 64
        return records

    archive = _seal(tmp_path, point_elsewhere)
    check = _chain_check(archive, "app-aes")
    assert not check.ok and "names other bytes" in check.detail


def test_a_missing_import_fails_the_chain(tmp_path):
    archive = _seal(tmp_path, lambda rs: [r for r in rs if r["action"] != "key-imported"])
    assert "no key-imported event" in _chain_check(archive, "app-rsa").detail


def test_sealing_refuses_a_hidden_file_instead_of_leaving_it_out(tmp_path):
    root = tmp_path / "workspace"
    make_workspace(root)
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "scratch.json").write_text("{}")
    people, quorum = make_people(tmp_path / "keys", root)
    with pytest.raises(RefusedError, match=r"scratch\.json is a hidden file"):
        build_evidence(root, people, quorum, ceremony_time=CEREMONY_TIME)
    assert not (root / "archive.tar").exists() and not (root / "evidence").exists()
