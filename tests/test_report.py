"""The printable report: every key, person and fingerprint in hex, words and QR; escaping; PDF."""

from __future__ import annotations

import json
import re

import pytest

from ceremony import report
from ceremony.fingerprint import Fingerprint
from tests.fixtures_evidence import SealedCeremony


@pytest.fixture(scope="module")
def predicate(sealed_ceremony: SealedCeremony) -> dict:
    statement = (sealed_ceremony.root / "evidence/statement.json").read_bytes()
    return json.loads(statement)["predicate"]


def test_report_shows_every_fingerprint(sealed_ceremony: SealedCeremony, predicate) -> None:
    root = sealed_ceremony.root
    html = (root / "evidence/report.html").read_text()
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (root / "evidence/SHA256SUMS").read_text().splitlines()
    )
    files = {n: d for n, d in sums.items() if not n.startswith("evidence/report.")}
    signing = ["alice", "bob", "wendy", "ada"]
    assert html == report.render_report(predicate, signing=signing, files=files)
    fingerprints = [predicate["kek"]["public_key_sha256"], predicate["transcript"]["head"]]
    fingerprints += [k["public_key_sha256"] for k in predicate["keys"] if k["public_key_sha256"]]
    fingerprints += [p.fingerprint.hex for p in sealed_ceremony.people]
    fingerprints += [s["install"]["bundle_sha256"] for s in predicate["software"]]  # each side's
    for digest in fingerprints:
        fp = Fingerprint.parse(digest)
        assert fp.short in html and fp.words in html
        assert f'aria-label="{fp.uri}"' in html  # its QR code
    assert html.count("<svg") == len(fingerprints)
    for checkpoint in predicate["checkpoints"]:
        assert Fingerprint.parse(checkpoint["head"]).short in html
    for key in predicate["keys"]:
        assert f"<h3>{key['name']}</h3>" in html and key["vault_kid"] in html
    assert "REHEARSAL" in html and predicate["exceptions"][0] in html
    assert "@media print" in html and "ceremony verify archive.tar --plan" in html
    # File hashes are labelled as such, beside every file the manifest lists.
    assert "File hash (SHA-256 of the file)" in html
    for name, digest in files.items():
        assert f'<td class="hex">{name}</td><td class="hex">{digest}</td>' in html


def test_report_has_no_raw_python_data(sealed_ceremony: SealedCeremony) -> None:
    html = (sealed_ceremony.root / "evidence/report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", html, flags=re.DOTALL))
    assert not re.search(r"[{\[]'|'[}\]]|\[\]|\bNone\b|\bTrue\b|\bFalse\b", text), re.findall(
        r".{40}(?:[{\[]'|\[\]|None|True|False).{40}", text
    )
    assert "Cryptoki 2.40" in text and "serial 1a2b3c" in text
    assert "HSM mechanisms 2: CKM_RSA_PKCS_OAEP, CKM_AES_KEY_WRAP_PAD" in " ".join(text.split())
    # What a witness asks: why a BYOK key is extractable.
    assert "Required for BYOK: the key may leave the HSM, but only wrapped" in html


def test_report_escapes_text(predicate) -> None:
    hostile = {**predicate, "plan": {"name": "<script>alert(1)</script>"}}
    html = report.render_report(hostile, signing=[])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_qr_codes_are_well_formed_svg(sealed_ceremony: SealedCeremony) -> None:
    import xml.etree.ElementTree as ET

    html = (sealed_ceremony.root / "evidence/report.html").read_text()
    for svg in re.findall(r"<svg.*?</svg>", html, re.DOTALL):
        ET.fromstring(svg)


def test_pdf_is_skipped_quietly_without_renderer(monkeypatch) -> None:
    monkeypatch.setattr(report, "pdf_renderer", lambda: None)
    assert report.render_pdf(b"<html></html>") is None


@pytest.mark.skipif(report.pdf_renderer() is None, reason="no HTML-to-PDF renderer installed")
def test_pdf_when_a_renderer_exists(sealed_ceremony: SealedCeremony) -> None:
    pdf = report.render_pdf((sealed_ceremony.root / "evidence/report.html").read_bytes())
    assert pdf is not None and pdf.startswith(b"%PDF")
