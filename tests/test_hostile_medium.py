"""The carried workspace is hostile input: each attack an insider with the medium could try, tried.

A real rehearsal is stopped after the online side's phase 01 (as when the medium leaves for the
offline machine); each test tampers with a copy of it the way an insider would and shows that the
next phase refuses, naming what was planted, with the refusal in the transcript — and that nothing
planted ever ran or was imported.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from ceremony.errors import RefusedError
from ceremony.runner import Runner, RunOptions
from tests.workbook_support import PINS, ceremony, clean_env, events, killed_rehearsal

PLANTED_PACKAGE = """
import pathlib
pathlib.Path({marker!r}).write_text("planted code ran")
"""


@pytest.fixture(scope="module")
def carried(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rehearsal stopped as the offline side received the workspace: its online folder is the
    medium as it left the online side (phase 01 confirmed, every rendering kept)."""
    root = tmp_path_factory.mktemp("carried") / "r"
    killed_rehearsal(root, "workspace-received", phase="00")
    return root


@pytest.fixture
def medium(carried: Path, tmp_path: Path) -> Path:
    """A copy of the carried rehearsal for one test to tamper with."""
    copy = tmp_path / "r"
    shutil.copytree(carried, copy, symlinks=True)
    return copy


def _run_offline_side(root: Path) -> None:
    options = RunOptions(phases="02-03", rehearsal=True, auto_confirm=True, collect_pins=False)
    Runner(root / "plan.toml", root / "workspace", options).run()


def _refused(root: Path, match: str) -> dict:
    """Run the offline phases, expect a refusal naming MATCH; return the recorded refusal."""
    with pytest.raises(RefusedError, match=match):
        _run_offline_side(root)
    last = events(root / "workspace")[-1]
    # Refused before the first phase of the run: the offline side's own preflight.
    assert last["action"] == "phase-refused" and last["phase"] == "00", last
    assert match.replace("\\", "") in last["data"]["message"]
    assert not any(
        e["action"] == "phase-started" and e["phase"] == "02" for e in events(root / "workspace")
    )
    return last


def test_a_planted_package_sitecustomize_and_notebook_never_run(medium: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    workspace = medium / "workspace"
    (workspace / "ceremony").mkdir()
    (workspace / "ceremony" / "__init__.py").write_text(PLANTED_PACKAGE.format(marker=str(marker)))
    (workspace / "sitecustomize.py").write_text(PLANTED_PACKAGE.format(marker=str(marker)))
    (workspace / "lab").mkdir()
    (workspace / "lab" / "02_generate.ipynb").write_text("{}")
    done = ceremony(
        "run", str(medium / "plan.toml"), "--workspace", str(workspace), "--phases", "02-03",
        "--rehearsal", env=clean_env(**PINS), answers=_confirmed_head_words(workspace) + "\n",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last_line = done.stderr.strip().splitlines()[-1]
    assert "is not accounted for by the transcript" in last_line
    assert any(name in last_line for name in ("ceremony/__init__.py", "sitecustomize.py", "lab/"))
    assert not marker.exists()
    refusal = events(workspace)[-1]
    assert (
        refusal["action"] == "phase-refused" and "not accounted for" in refusal["data"]["message"]
    )


def test_a_kernel_never_imports_from_the_folder_it_runs_in(tmp_path: Path):
    """Even in a folder full of planted modules, a phase kernel imports the installed workbook."""
    import nbformat

    from ceremony.runner import execute_notebook

    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile"
    (hostile / "ceremony").mkdir(parents=True)
    for planted in ("ceremony/__init__.py", "sitecustomize.py", "usercustomize.py", "json.py"):
        (hostile / planted).write_text(PLANTED_PACKAGE.format(marker=str(marker)))
    notebook = tmp_path / "probe.ipynb"
    probe = "import ceremony, json, os, sys\nprint(ceremony.__file__, sys.flags.safe_path)"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(probe)]), notebook)
    output = tmp_path / "out.ipynb"
    execute_notebook(notebook, output, {}, cwd=hostile, env={}, out=io.StringIO())
    printed = nbformat.read(output, as_version=4).cells[0].outputs[0]["text"]
    installed = str(Path(__import__("ceremony").__file__))
    assert printed.split() == [installed, "True"]
    assert not marker.exists()


def test_a_planted_byok_and_challenge_are_never_imported(medium: Path):
    """The attack of the review: a package wrapping the attacker's AES key for the real KEK."""
    keys = medium / "workspace" / "keys"
    keys.mkdir()
    (keys / "rehearsal-aes.byok").write_text('{"schema_version": "1.0.0"}')
    (keys / "rehearsal-aes.challenge.json").write_text("{}")
    _refused(medium, "keys/rehearsal-aes")
    assert not any(e["action"] == "key-imported" for e in events(medium / "workspace"))


@pytest.mark.parametrize(
    ("plant", "match"),
    [
        ("kek.pem -> /etc/hostname", "kek.pem is a symbolic link"),
        ("keys -> OUTSIDE", "keys is a symbolic link"),
        ("notebooks/00_preflight.html -> /etc/passwd", "00_preflight.html is a symbolic link"),
    ],
)
def test_a_planted_symlink_is_refused_and_nothing_is_written_through_it(
    medium: Path, tmp_path: Path, plant: str, match: str
):
    outside = tmp_path / "outside"
    outside.mkdir()
    name, target = plant.split(" -> ")
    link = medium / "workspace" / name
    if link.exists():
        link.unlink()
    link.symlink_to(outside if target == "OUTSIDE" else target)
    _refused(medium, match)
    assert list(outside.iterdir()) == []


def test_a_symlinked_transcript_is_refused(medium: Path, tmp_path: Path):
    transcript = medium / "workspace" / "transcript.jsonl"
    moved = tmp_path / "elsewhere.jsonl"
    shutil.move(transcript, moved)
    before = moved.read_bytes()
    transcript.symlink_to(moved)
    with pytest.raises(RefusedError, match=r"transcript\.jsonl is a link"):
        _run_offline_side(medium)
    assert moved.read_bytes() == before  # nothing was appended through the link


@pytest.mark.parametrize(
    ("plant", "match"),
    [
        ("hidden", "\\.stash/keys.tar is not accounted for"),
        ("hard link", "is hard-linked to another file"),
        ("fifo", "is a pipe or socket"),
        ("changed", "kek.json changed since the transcript recorded it"),
    ],
)
def test_hidden_linked_special_and_changed_files_are_refused(medium: Path, plant: str, match: str):
    workspace = medium / "workspace"
    if plant == "hidden":
        (workspace / ".stash").mkdir()
        (workspace / ".stash" / "keys.tar").write_bytes(b"exfiltrated")
    elif plant == "hard link":
        os.link(workspace / "kek.pem", workspace / "people" / "kek-copy.pem")
    elif plant == "fifo":
        os.mkfifo(workspace / "keys.fifo")
    else:
        record = json.loads((workspace / "kek.json").read_text())
        record["kid"] = record["kid"].replace("byok-kek", "attacker-kek")
        (workspace / "kek.json").write_text(json.dumps(record))
    _refused(medium, match)


def test_an_untouched_medium_is_admitted_with_every_file_accounted_for(medium: Path):
    from ceremony.workspace import Workspace

    workspace = Workspace(medium / "workspace", None)  # type: ignore[arg-type]
    admission = workspace.admit("02", "ada")
    files = [p for p in (medium / "workspace").rglob("*") if p.is_file()]
    assert admission.accounted == len(files) and admission.discarded == ()


# -- a rewritten transcript: the paper record of the last checkpoint is the anchor ---------------


def _confirmed_head_words(workspace: Path) -> str:
    """What the witnesses wrote down at the last checkpoint: its head's first two words."""
    from ceremony.fingerprint import Fingerprint

    confirmed = [e for e in events(workspace) if e["action"] == "checkpoint-confirmed"][-1]
    words = Fingerprint(bytes.fromhex(confirmed["data"]["confirmed_head"])).word_list
    return " ".join(words[:2])


def _forge(workspace: Path, after_seq: int, planted: dict) -> None:
    """Rewrite the transcript as a forger with the medium would: insert PLANTED after line
    AFTER_SEQ and rebuild the chain, confirmations pointing at the new heads, so it verifies."""
    from ceremony.canonical import canonical_json, sha256_hex
    from ceremony.transcript import Transcript

    path = workspace / "transcript.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    forged, new_head_of = Transcript(path), {}
    for record in records:
        data = record.get("data")
        if record["action"] == "checkpoint-confirmed":
            data = {**data, "confirmed_head": new_head_of[data["confirmed_head"]]}
        event = forged.append(record["phase"], record["actor"], record["action"], data)
        new_head_of[sha256_hex(canonical_json(record))] = event.line_sha256  # lines are canonical
        if record["seq"] == after_seq:
            forged.append(planted["phase"], "ada", planted["action"], planted["data"])


def _plant_byok(workspace: Path) -> dict:
    from hashlib import sha256

    data = b'{"planted": "a package wrapping the attacker\'s AES key"}'
    (workspace / "keys").mkdir()
    (workspace / "keys" / "rehearsal-aes.byok").write_bytes(data)
    digest = sha256(data).hexdigest()
    record = {"path": "keys/rehearsal-aes.byok", "sha256": digest, "size": len(data)}
    return {"phase": "01", "action": "file-written", "data": record}


def _runner(root: Path, answers: list[str]) -> Runner:
    replies = iter(answers)
    options = RunOptions(
        phases="02-03", rehearsal=True, collect_pins=False, ask=lambda _: next(replies)
    )
    return Runner(root / "plan.toml", root / "workspace", options)


def test_a_rewritten_transcript_fails_the_paper_record(medium: Path):
    """The forger accounts for a planted package inside phase 01 and rebuilds the chain: the
    ledger would accept it, but its head no longer matches what the witnesses wrote down."""
    from ceremony.phases import PHASES

    workspace = medium / "workspace"
    paper = _confirmed_head_words(workspace)
    completion = [e for e in events(workspace) if e["action"] == "phase-completed"][-1]
    _forge(workspace, completion["seq"] - 1, _plant_byok(workspace))
    assert _confirmed_head_words(workspace) != paper  # the forgery verifies, with other heads
    with pytest.raises(RefusedError, match="not the one the witnesses wrote down"):
        _runner(medium, [paper] * 3).receive(PHASES[2])
    assert events(workspace)[-1]["action"] == "phase-refused"


def test_the_genuine_medium_matches_the_paper_record(medium: Path):
    from ceremony.phases import PHASES

    workspace = medium / "workspace"
    paper = _confirmed_head_words(workspace)
    _runner(medium, ["wrong words", paper]).receive(PHASES[2])
    received = events(workspace)[-1]
    assert received["action"] == "workspace-received" and received["data"]["checkpoint"] == "01"


def test_a_file_accounted_to_a_closed_phase_after_its_checkpoint_is_refused(medium: Path):
    """Appending is easier than rewriting: a line after checkpoint 01 that accounts a planted
    package to phase 01 is refused before any prompt, even in a rehearsal."""
    from ceremony.transcript import Transcript

    workspace = medium / "workspace"
    planted = _plant_byok(workspace)
    Transcript(workspace / "transcript.jsonl").append("01", "ada", "file-written", planted["data"])
    with pytest.raises(RefusedError, match="after checkpoint 01"):
        _run_offline_side(medium)


def test_in_jupyterlab_a_phase_asks_for_the_paper_record_too(medium: Path, monkeypatch):
    """The lab and the runner are one ceremony: a notebook with a terminal asks for the last
    checkpoint's head words before it trusts the workspace, and refuses a wrong answer."""
    from ceremony import steps
    from ceremony.steps import context

    workspace = medium / "workspace"
    paper = _confirmed_head_words(workspace)
    monkeypatch.setattr(context, "_kernel_has_stdin", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _: "wrong words")
    with pytest.raises(RefusedError, match="not the one the witnesses wrote down"):
        steps.begin("02", medium / "plan.toml", workspace, "rehearsal")
    assert events(workspace)[-1]["action"] == "phase-refused"
    monkeypatch.setattr("builtins.input", lambda _: paper)
    ctx = steps.begin("02", medium / "plan.toml", workspace, "rehearsal")
    assert [e["action"] for e in events(workspace)[-2:]] == ["workspace-received", "phase-started"]
    assert ctx.phase.number == "02"
