"""ceremony.ledger: the workspace holds exactly what the transcript accounts for.

Unit tests of the fold and the check on a hand-made transcript; the attacks themselves are tried
on a real rehearsal in test_hostile_medium.py.
"""

from __future__ import annotations

from hashlib import sha256

import pytest

from ceremony.errors import RefusedError
from ceremony.transcript import Transcript
from ceremony.workspace import Workspace


@pytest.fixture
def workspace(tmp_path):
    return Workspace.open(tmp_path / "ws", "ceremony-a", "1" * 64)


def test_files_written_through_the_workspace_are_admitted(workspace):
    workspace.write_new("plan.toml", b"plan", phase="00", actor="ada")
    workspace.transcript.append("00", "ada", "phase-completed", {})
    workspace.write_new("keys/a.json", b"{}", phase="02", actor="ada")
    admission = workspace.admit("03", "ada")
    # ceremony.json, transcript.jsonl, plan.toml, keys/a.json
    assert admission.accounted == 4 and admission.discarded == ()
    recorded = [e.data for e in workspace.events() if e.action == "file-written"]
    assert recorded[0] == {"path": "plan.toml", "sha256": sha256(b"plan").hexdigest(), "size": 4}


def test_an_interrupted_attempts_outputs_are_discarded_never_adopted(workspace):
    workspace.write_new("kek.pem", b"kek", phase="01", actor="ada")
    workspace.transcript.append("01", "ada", "phase-completed", {})
    workspace.write_new("keys/a.byok", b"first attempt", phase="03", actor="ada")
    (workspace.root / "keys" / ".b.byok.part").write_bytes(b"half")  # a crash mid-write
    workspace.transcript.append("03", "ada", "file-written", {"path": "keys/b.byok", "sha256": "0"})
    admission = workspace.admit("03", "ada")
    assert sorted(admission.discarded) == ["keys/.b.byok.part", "keys/a.byok"]
    assert not (workspace.root / "keys").exists()
    assert (workspace.root / "kek.pem").read_bytes() == b"kek"  # a completed phase's file stays
    last = workspace.events()[-1]
    assert last.action == "files-discarded" and sorted(last.data["paths"]) == sorted(
        admission.discarded
    )
    assert workspace.admit("03", "ada").discarded == ()


def test_another_phases_unfinished_output_is_not_discarded_but_accounted(workspace):
    workspace.write_new("keys/a.json", b"{}", phase="02", actor="ada")
    assert workspace.admit("03", "ada").discarded == ()
    assert (workspace.root / "keys" / "a.json").exists()


def test_an_unrecorded_file_is_refused_even_next_to_recorded_ones(workspace):
    workspace.write_new("keys/a.json", b"{}", phase="02", actor="ada")
    (workspace.root / "keys" / "a.byok").write_bytes(b"planted")
    with pytest.raises(RefusedError, match=r"keys/a\.byok is not accounted for"):
        workspace.admit("03", "ada")
    assert (workspace.root / "keys" / "a.byok").read_bytes() == b"planted"  # evidence kept


def test_a_file_recorded_after_the_seal_is_accounted(workspace):
    after = Transcript(workspace.root / ".after-seal" / "transcript.jsonl")
    (workspace.root / "archive.tar").write_bytes(b"tar")
    after.append("05", "ada", "sealed", {"files": {"archive.tar": sha256(b"tar").hexdigest()}})
    assert workspace.admit("05", "ada").accounted == 3  # binding, after-seal transcript, archive
