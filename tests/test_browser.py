"""The printed side in a real browser: the report, the ceremony script and the executed notebooks'
HTML open offline (any request leaving the file fails the test) and every QR code on the rendered
page decodes to the fingerprint printed beside it."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from ceremony.checkpoint import Checkpoint, CheckpointItem
from ceremony.fingerprint import Fingerprint
from ceremony.notebook_html import render_notebook_html
from tests.fixtures_browser import Browser, RenderedPage, printed_hex
from tests.fixtures_evidence import SealedCeremony


def assert_qr_codes_match(page: RenderedPage, at_least: int) -> None:
    assert len(page.qr_codes) >= at_least
    for decoded, beside in page.qr_codes:
        assert decoded.startswith("sha256:"), (decoded, beside)
        assert decoded.removeprefix("sha256:") == printed_hex(beside), (decoded, beside)


def test_report_opens_offline_and_its_qr_codes_decode(
    sealed_ceremony: SealedCeremony, browser: Browser, tmp_path: Path
) -> None:
    report = sealed_ceremony.root / "evidence/report.html"
    page = browser.render(report, png=tmp_path / "report.png")
    assert page.external == [] and page.requests
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")
    # KEK, three keys (the AES key has no public half: two QR codes), five people, the head.
    assert_qr_codes_match(page, at_least=1 + 2 + 5 + 1)


def _notebook() -> bytes:
    """A notebook as the runner keeps it: markdown with maths, a checkpoint shown as HTML."""
    item = CheckpointItem("kek.pem (the KEK)", Fingerprint.of(b"kek").hex)
    checkpoint = Checkpoint("01", "01 kek", (item,), Fingerprint.of(b"head").hex)
    nb = nbformat.v4.new_notebook()
    shown = {"text/html": checkpoint.render_html(), "text/plain": repr(checkpoint)}
    output = nbformat.v4.new_output("display_data", shown)
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Phase 01\nThe KEK has $n$ bits."),
        nbformat.v4.new_code_cell("ceremony.complete()", outputs=[output]),
    ]
    return nbformat.writes(nb).encode()


def test_notebook_html_opens_offline(browser: Browser, tmp_path: Path) -> None:
    notebook = _notebook()
    ours = tmp_path / "01_kek.html"
    ours.write_bytes(render_notebook_html(notebook))
    page = browser.render(ours)
    assert page.external == []
    assert_qr_codes_match(page, at_least=1)
    # The stock export would have fetched scripts from a CDN: the check above can fail.
    stock = tmp_path / "stock.html"
    body, _ = HTMLExporter().from_notebook_node(nbformat.reads(notebook.decode(), as_version=4))
    stock.write_text(body)
    assert any("cdnjs" in url or "http" in url for url in browser.render(stock).external)
