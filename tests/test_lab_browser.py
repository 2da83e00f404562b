"""Training in a real browser: `ceremony lab --practice` and a trainee at JupyterLab (system
Chromium driven by playwright) running the practice ceremony 00 → 05 by Run All Cells, answering
each checkpoint from what the page shows, to an archive that `ceremony verify` accepts; and a
refused checkpoint that keeps the next phase from starting, both in the transcript."""

from __future__ import annotations

import socket
import subprocess
import sys
import tarfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ceremony.phases import PHASES
from ceremony.plan import load_plan
from tests.lab_browser import PracticeLab, Trainee
from tests.workbook_support import events


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def trainee(chromium: Any, tmp_path: Path) -> Iterator[Trainee]:
    """A practice lab (tokens, vault, plan, JupyterLab) and a browser page on it; the lab is
    stopped afterwards as a trainer's Ctrl-C stops it."""
    lab = PracticeLab.start(tmp_path / "practice", tmp_path / "config", _free_port())
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield Trainee(context.new_page(), lab)
    finally:
        context.close()
        lab.stop()


def test_a_trainee_runs_the_practice_ceremony_to_a_verified_archive(trainee: Trainee) -> None:
    lab = trainee.lab
    for phase in PHASES:
        ended = trainee.run_phase(phase.number)
        assert "confirmed by wanda" in ended, f"phase {phase.number}: {ended}"
    # Each checkpoint was asked after it was shown, in the notebooks' own words, and from
    # phase 01 on, each notebook first asked for the paper record of the checkpoint before.
    asked = "\n".join(trainee.prompts)
    assert asked.count("When all agree, type the first two words of the transcript head: ") == 5
    assert "When all agree, type the first two words of the archive's SHA-256" in asked
    for earlier in ("00", "01", "02", "03", "04"):
        assert f"from the paper record of checkpoint {earlier}" in asked
    archive = lab.workspace / "archive.tar"
    # The auditor's check, anchored on the reviewed plan and the words written down.
    heads = [f"--expect-head={n}={words}" for n, words in trainee.paper.items() if n != "05"]
    verified = subprocess.run(
        [sys.executable, "-m", "ceremony", "verify", str(archive), "--plan",
         str(lab.root / "plan.toml"), *heads],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The executed notebooks of 00-04 are sealed, as `ceremony run` seals them, each showing
    # its confirmation; the last one is kept after the seal when the lab stops.
    with tarfile.open(archive) as sealed:
        names = sealed.getnames()
        for phase in PHASES[:-1]:
            kept = next(n for n in names if n.endswith(f"notebooks/{phase.notebook}"))
            assert b"confirmed by wanda" in sealed.extractfile(kept).read()
            assert any(n.endswith(phase.notebook.replace(".ipynb", ".html")) for n in names)
    assert lab.stop() in (0, 130), lab.output()
    # Stopping the lab stopped what it started: the practice vault answers no more.
    vault = urllib.parse.urlsplit(load_plan(lab.root / "plan.toml").vault.url)
    with pytest.raises(OSError):
        socket.create_connection((vault.hostname, vault.port), timeout=5).close()
    after = lab.workspace / ".after-seal" / "notebooks" / PHASES[-1].notebook
    assert b"confirmed by wanda" in after.read_bytes()
    # Nothing of the lab is left in the workspace but what the transcript accounts for.
    assert not (lab.workspace / "lab").exists()


def test_a_refused_checkpoint_keeps_the_next_phase_from_starting(trainee: Trainee) -> None:
    workspace = trainee.lab.workspace
    shown = trainee.run_phase("00", wrong_words=3)
    # The cell shows the sentence and what to do first, not a traceback.
    first, second = shown.splitlines()[:2]
    assert first.startswith("RefusedError: The checkpoint was not confirmed: 3 answers")
    assert second.startswith("What to do: Stop and compare the screen")
    # It asked again after each wrong answer, as the terminal does.
    assert sum(p.startswith("That is not it") for p in trainee.prompts) == 2
    before = events(workspace)
    assert [e["action"] for e in before].count("checkpoint-answer-refused") == 3
    assert before[-1]["action"] == "phase-refused" and before[-1]["phase"] == "00"
    assert not any(e["action"] == "checkpoint-confirmed" for e in before)

    shown = trainee.run_phase("01")
    assert shown.startswith(
        "RefusedError: Phase 01 kek cannot run yet: phase 00 preflight is not complete and "
        "confirmed by the witnesses."
    ), shown
    after = events(workspace)[len(before) :]
    assert [(e["phase"], e["action"]) for e in after] == [("01", "phase-refused")]
    assert not (workspace / "kek.json").exists()
