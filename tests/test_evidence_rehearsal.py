"""Evidence from the real flow: a whole rehearsal (SoftHSM2 tokens, local vault, papermill kernels,
one signing token per person) in a child process, then verification and tampering of its archive."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from ceremony.evidence.secrets import scan_tree
from ceremony.evidence.verify import verify_path
from ceremony.rehearsal import PEOPLE, person_variable
from tests.fixtures_browser import printed_hex
from tests.fixtures_evidence import assert_no_secrets, members, openssl_spki_sha256


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The rehearsal's directory and every PIN it used (chosen here, so the scan can look)."""
    out = tmp_path_factory.mktemp("rehearsal") / "run"
    pins = {"CEREMONY_PIN": secrets.token_hex(12)}
    pins.update({person_variable(name): secrets.token_hex(12) for name, _ in PEOPLE})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEREMONY_PIN", "SOFTHSM2"))}
    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "rehearse", "--out", str(out)],
        env={**env, **pins},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out / "rehearsal-output.txt").write_text(done.stdout)
    return out, list(pins.values())


def test_rehearsal_archive_verifies(rehearsal) -> None:
    out, pins = rehearsal
    archive = out / "workspace" / "archive.tar"
    report = verify_path(archive)
    assert report.verified, report.first_failure
    assert sorted(report.signed_by) == sorted(name for name, _ in PEOPLE)
    checks = {(c.check, c.subject) for c in report.checks}
    for name in ("rehearsal-rsa", "rehearsal-ec", "rehearsal-aes"):
        assert ("byok", f"keys/{name}.byok") in checks
        assert ("import", f"keys/{name}.import.json") in checks
    assert_no_secrets(archive, pins)
    # The whole sealed workspace too, hidden runner state included.
    assert scan_tree(out / "workspace", pins) == []
    done = subprocess.run(
        [sys.executable, "-m", "ceremony", "verify", str(archive)], capture_output=True, text=True
    )
    assert done.returncode == 0 and "VERIFIED" in done.stdout


def test_rehearsal_envelope_verifies_with_securesystemslib(rehearsal) -> None:
    workspace = rehearsal[0] / "workspace"
    envelope = Envelope.from_dict(
        json.loads((workspace / "evidence/statement.dsse.json").read_bytes())
    )
    # The people's public keys as the plan gave them, not the copies inside the evidence.
    keys = [
        SSlibKey.from_crypto(
            serialization.load_pem_public_key(path.read_bytes()), keyid=openssl_spki_sha256(path)
        )
        for path in sorted((rehearsal[0] / "people").glob("*.pub.pem"))
    ]
    assert len(envelope.verify(keys, threshold=len(PEOPLE))) == len(PEOPLE)


def test_rehearsal_flip_one_byte_in_each_member(rehearsal, tmp_path: Path) -> None:
    original = (rehearsal[0] / "workspace" / "archive.tar").read_bytes()
    target = tmp_path / "archive.tar"
    for member in members(original):
        data = bytearray(original)
        data[member.offset_data + member.size // 2] ^= 0x01
        target.write_bytes(bytes(data))
        report = verify_path(target)
        assert not report.verified, member.name
        assert report.failed[0].subject == member.name, (member.name, report.first_failure)


def _shown_at_checkpoints(output: str) -> dict[str, list[str]]:
    """Per checkpoint, the lines the witnesses were shown (from the runner's terminal output)."""
    shown: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        match = re.match(r"CHECKPOINT after phase (\d\d) ", line)
        if match:
            current = match.group(1)
            shown[current] = []
        elif current:
            shown[current].append(line)
            if line.startswith("=" * 78) and len(shown[current]) > 1:
                current = None
    return shown


def test_every_value_shown_to_the_witnesses_is_confirmed_by_the_archive(rehearsal) -> None:
    out = rehearsal[0]
    shown = _shown_at_checkpoints((out / "rehearsal-output.txt").read_text())
    assert sorted(shown) == ["00", "01", "02", "03", "04", "05"]
    heads = {}
    for phase in ("00", "01", "02", "03", "04"):
        line = next(x for x in shown[phase] if x.startswith("Transcript head"))
        heads[phase] = line.removeprefix("Transcript head").strip()
    # The last checkpoint shows only the archive's SHA-256, the value to write down last.
    assert not any("Transcript head" in line for line in shown["05"])
    final = next(x for x in shown["05"] if x.strip().startswith("sha256")).split(None, 1)[1]
    archive = out / "workspace" / "archive.tar"
    assert "".join(final.split()).lower() == hashlib.sha256(archive.read_bytes()).hexdigest()
    anchors = ["--plan", str(out / "plan.toml"), "--expect-sha256", final]
    for phase, head in heads.items():
        anchors += ["--expect-head", f"{phase}={head[:9]}"]  # "8225 3EAE": as written down
    done = subprocess.run([sys.executable, "-m", "ceremony", "verify", str(archive), *anchors],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REHEARSAL" in done.stdout
    assert done.stdout.splitlines()[-1].startswith(
        f"This verdict rests on the archive and the reviewed plan {out / 'plan.toml'}"
    )
    assert "checkpoint 04's head" in done.stdout.splitlines()[-1]
    production = subprocess.run(
        [sys.executable, "-m", "ceremony", "verify", str(archive), "--production"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert production.returncode == 1 and "a rehearsal" in production.stdout


def test_every_html_of_the_rehearsal_opens_offline(rehearsal, browser) -> None:
    workspace = rehearsal[0] / "workspace"
    pages = sorted(workspace.glob("**/*.html")) + sorted(workspace.glob(".after-seal/**/*.html"))
    assert {p.name for p in pages} >= {"report.html", "00_preflight.html", "05_evidence.html"}
    for path in pages:
        page = browser.render(path)
        assert page.external == [], (path, page.external)
        for decoded, beside in page.qr_codes:
            assert decoded.removeprefix("sha256:") == printed_hex(beside), (path, beside)
