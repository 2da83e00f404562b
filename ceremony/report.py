"""report: render the printable evidence report (HTML, and PDF when a renderer is installed).

A view of the signed predicate only: it computes fingerprints' spoken and QR forms, never new facts,
and never receives secrets.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ceremony import __version__
from ceremony.fingerprint import Fingerprint
from ceremony.resources import templates_dir
from ceremony.software import Software

_CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def render_report(predicate: Mapping[str, Any], *, signing: Sequence[str]) -> str:
    """The HTML report for a ceremony predicate; `signing` names the people who sign it."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        p=predicate,
        signing=list(signing),
        kek=_fingerprint_view(predicate.get("kek", {}).get("public_key_sha256")),
        keys=[
            {**key, "fp": _fingerprint_view(key.get("public_key_sha256"))}
            for key in predicate.get("keys", [])
        ],
        people=[
            {**person, "fp": _fingerprint_view(person["public_key_sha256"])}
            for person in predicate.get("people", [])
        ],
        head=_fingerprint_view((predicate.get("transcript") or {}).get("head")),
        software=[_software_view(side) for side in predicate.get("software", [])],
        version=__version__,
    )


def pdf_renderer() -> str | None:
    """Name of an installed HTML-to-PDF renderer, or None."""
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        return next((name for name in _CHROMIUM if shutil.which(name)), None)
    return "weasyprint"


def render_pdf(html: bytes) -> bytes | None:
    """The report as PDF, or None (quietly) when no renderer is installed."""
    renderer = pdf_renderer()
    if renderer is None:
        return None
    if renderer == "weasyprint":
        import weasyprint

        return weasyprint.HTML(string=html.decode()).write_pdf()
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "report.html"), Path(tmp, "report.pdf")
        source.write_bytes(html)
        subprocess.run(
            [
                shutil.which(renderer) or renderer,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                f"--print-to-pdf={target}",
                source.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        return target.read_bytes() if target.exists() else None


def _software_view(side: Mapping[str, Any]) -> dict[str, Any]:
    """One side's software entry, with its installation in words and its identity's fingerprint."""
    try:
        software = Software.from_dict(dict(side))
    except (KeyError, TypeError, ValueError):
        return {**side, "installed_as": "(not recorded)", "fp": None}
    return {
        **side,
        "installed_as": software.installed_as(),
        "fp": _fingerprint_view(software.digest),
    }


def _fingerprint_view(hex_digest: str | None) -> dict[str, Any] | None:
    if not hex_digest:
        return None
    fp = Fingerprint.parse(hex_digest)
    return {"hex": fp.hex, "short": fp.short, "words": fp.words, "qr": Markup(fp.qr_svg())}
