"""The printed ceremony script: made from the plan alone, every value known in advance as hex,
words and a QR code that decodes in a real browser; the command refuses bad input in a sentence."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ceremony.fingerprint import Fingerprint, fingerprint_public_key
from ceremony.plan import load_plan
from ceremony.report import pdf_renderer
from tests.evidence_workspace import make_people, plan_text
from tests.fixtures_browser import Browser, printed_hex


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A reviewed plan with its people's keys beside it, and the script written from it."""
    folder = tmp_path_factory.mktemp("plan")
    people, quorum = make_people(folder / "keys")
    for person in people:
        (folder / "people").mkdir(exist_ok=True)
        (folder / f"people/{person.name}.pub.pem").write_text(person.public_key_pem)
    plan = folder / "plan.toml"
    plan.write_text(plan_text(people, quorum, ("payments-ec", "backup-ec")))
    done = _cli("script", str(plan), "--out", str(folder / "out"))
    assert done.returncode == 0, done.stderr
    return plan, folder / "out"


def test_script_holds_every_value_known_in_advance(script) -> None:
    plan_path, out = script
    html = (out / "ceremony-script.html").read_text()
    plan = load_plan(plan_path)
    known = [Fingerprint.parse(plan.sha256), Fingerprint.parse(plan.kek.fingerprint)] + [
        fingerprint_public_key(p.public_key_pem) for p in plan.people
    ]
    for fp in known:
        assert fp.short in html and fp.words in html and f'aria-label="{fp.uri}"' in html
    for person in plan.people:
        assert f"<td>{person.name}</td><td>{person.role}</td>" in html
    for number in ("00", "01", "02", "03", "04"):
        assert f"<strong>Checkpoint {number}:</strong>" in html
    assert "Final fingerprint: the archive's SHA-256" in html
    assert html.count("&#9744;") >= 6 * 3  # a box to tick per step
    assert re.search(r"<td>02\.2</td><td>Custodians: enter the HSM PIN", html)
    assert f"ceremony run {plan_path.name} --workspace" in html
    assert (
        '<h2 class="newpage">Exceptions</h2>' in html and '<h2 class="newpage">Signatures' in html
    )
    assert "payments-ec (EC-HSM P-256)" in html or "payments-ec (" in html


@pytest.mark.skipif(pdf_renderer() is None, reason="no HTML-to-PDF renderer (chromium) installed")
def test_script_pdf(script) -> None:
    assert (script[1] / "ceremony-script.pdf").read_bytes().startswith(b"%PDF")


def test_script_in_a_browser(script, browser: Browser, tmp_path: Path) -> None:
    page = browser.render(script[1] / "ceremony-script.html", png=tmp_path / "script.png")
    assert page.external == []
    assert len(page.qr_codes) == 2 + 5
    for decoded, beside in page.qr_codes:
        assert decoded.removeprefix("sha256:") == printed_hex(beside), beside


def test_script_refuses_bad_input(script, tmp_path: Path) -> None:
    plan_path, out = script
    again = _cli("script", str(plan_path), "--out", str(out))
    assert again.returncode != 0 and "never overwritten" in again.stderr
    (tmp_path / "plan.toml").write_text("[ceremony]\nid = 1\n")
    bad = _cli("script", str(tmp_path / "plan.toml"), "--out", str(tmp_path / "out"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    # One sentence for the plan, then each of its problems named on a line of its own.
    lines = bad.stderr.strip().splitlines()
    assert lines[0].startswith("ceremony: error: Plan") and "problems" in lines[0]
    assert all(line.startswith("  - Plan field") for line in lines[1:-1])
    assert not (tmp_path / "out").exists()
