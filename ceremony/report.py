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


def render_report(
    predicate: Mapping[str, Any], *, signing: Sequence[str], files: Mapping[str, str] | None = None
) -> str:
    """The HTML report for a ceremony predicate; `signing` names the people who sign it, `files`
    maps each evidence file sealed beside it to its SHA-256 (file hashes, as in SHA256SUMS)."""
    template = environment().get_template("report.html.j2")
    return template.render(
        p=predicate,
        signing=list(signing),
        kek=fingerprint_view(predicate.get("kek", {}).get("public_key_sha256")),
        keys=[
            {
                **key,
                "fp": fingerprint_view(key.get("public_key_sha256")),
                "attribute_rows": attribute_rows(key.get("attributes") or {}),
            }
            for key in predicate.get("keys", [])
        ],
        people=[
            {**person, "fp": fingerprint_view(person["public_key_sha256"])}
            for person in predicate.get("people", [])
        ],
        checkpoints=[
            {"phase": c["phase"], "fp": fingerprint_view(c["head"])}
            for c in predicate.get("checkpoints", [])
        ],
        head=fingerprint_view((predicate.get("transcript") or {}).get("head")),
        hsm=hsm_rows(predicate.get("hsm") or {}),
        self_test=self_test_rows(predicate.get("wrap_self_test") or {}),
        tools=[(name, plain(value)) for name, value in sorted(predicate.get("tools", {}).items())],
        files=sorted((files or {}).items()),
        software=[_software_view(side) for side in predicate.get("software", [])],
        version=__version__,
    )


def environment() -> Environment:
    """The Jinja2 environment for the project's HTML templates (autoescaped, strict)."""
    return Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
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
                # A profile of its own, and nothing that reaches out: no updates, sync or
                # background fetches (on an offline machine they only fail, slowly).
                f"--user-data-dir={Path(tmp, 'profile')}",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
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
        "fp": fingerprint_view(software.digest),
    }


def fingerprint_view(hex_digest: str | None) -> dict[str, Any] | None:
    """A SHA-256 as the printed page shows it: grouped hex, PGP words and an SVG QR code."""
    if not hex_digest:
        return None
    fp = Fingerprint.parse(hex_digest)
    return {"hex": fp.hex, "short": fp.short, "words": fp.words, "qr": Markup(fp.qr_svg())}


def plain(value: Any) -> str:
    """A recorded value in words for the page: never a Python repr of a dict or list."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {plain(v)}" for k, v in value.items())
    return str(value)


def attribute_rows(attributes: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Each PKCS#11 attribute of a key: its name, its value in words, and what that means."""
    return [
        (name, plain(value), ATTRIBUTE_MEANINGS.get(name, {}).get(bool(value), ""))
        for name, value in sorted(attributes.items())
    ]


def hsm_rows(hsm: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The HSM's library, token and mechanisms as sentences; other fields in plain words."""
    rows = []
    for field, value in hsm.items():
        if field == "library" and isinstance(value, dict):
            rows.append(("Library", _library(value)))
        elif field == "token" and isinstance(value, dict):
            rows.append(("Token", _token(value)))
        elif field in ("tokens", "mechanisms") and isinstance(value, list):
            names = [v.get("name") or v.get("label") or "?" for v in value if isinstance(v, dict)]
            if names:
                what = "Mechanisms" if field == "mechanisms" else "Other tokens"
                rows.append((what, f"{len(names)}: " + ", ".join(names)))
        else:
            rows.append((field.replace("_", " ").capitalize(), plain(value)))
    return rows


def _library(library: Mapping[str, Any]) -> str:
    return (
        f"{library.get('manufacturer', '?')} {library.get('description', '')}, version "
        f"{library.get('library_version', '?')}, Cryptoki {library.get('cryptoki_version', '?')} "
        f"({library.get('path', '?')})"
    )


def _token(token: Mapping[str, Any]) -> str:
    return (
        f"{token.get('label', '?')}: {token.get('manufacturer', '?')} {token.get('model', '?')}, "
        f"serial {token.get('serial', '?')}, firmware {token.get('firmware_version', '?')}"
    )


def self_test_rows(test: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The wrap self-test's outcome as sentences."""
    if not test:
        return []
    verdict = (
        "conformant"
        if test.get("conformant")
        else (f"not conformant: {test.get('deviation_description') or test.get('deviation', '?')}")
    )
    rows = [("Result", verdict)]
    if test.get("path"):
        rows.append(("Path chosen", f"{test['path']} ({plain(test.get('reason'))})"))
    if "native" in test:
        rows.append(("Native CKM_RSA_AES_KEY_WRAP", plain(test["native"])))
    two_step = test.get("two_step")
    if isinstance(two_step, dict):
        rows.append(("Two-step (RFC 5649 + RSA-OAEP SHA-1)", plain(two_step.get("verdict"))))
    elif test.get("mechanism"):
        native = "yes" if test.get("native_rsa_aes") else "no (two steps, the identical blob)"
        rows.append(
            (
                "Mechanism",
                f"{test['mechanism']} {test.get('mechanism_code', '')}; "
                f"native CKM_RSA_AES_KEY_WRAP: {native}",
            )
        )
    for candidate in test.get("candidates") or []:
        if isinstance(candidate, dict):
            rows.append((f"Tried {candidate.get('name', '?')}", plain(candidate.get("outcome"))))
    return rows


# What a witness asks about each attribute of a key made for BYOK, in plain words.
ATTRIBUTE_MEANINGS: dict[str, dict[bool, str]] = {
    "CKA_EXTRACTABLE": {
        True: "Required for BYOK: the key may leave the HSM, but only wrapped. CKA_SENSITIVE "
        "keeps it from ever leaving in plaintext, and it was wrapped under the Azure KEK alone.",
        False: "The key cannot leave the HSM at all, so it cannot be imported into Azure.",
    },
    "CKA_SENSITIVE": {
        True: "The key's value can never be read from the HSM in plaintext.",
        False: "The key's value could be read in plaintext: not acceptable for a ceremony key.",
    },
    "CKA_ALWAYS_SENSITIVE": {
        True: "It has been sensitive since it was made: never readable, at any time.",
        False: "It was readable at some point in its life.",
    },
    "CKA_NEVER_EXTRACTABLE": {
        True: "It was never extractable.",
        False: "Expected for BYOK: it had to be extractable to be wrapped for Azure.",
    },
    "CKA_LOCAL": {
        True: "It was generated inside this HSM, not imported into it.",
        False: "It was imported into the HSM rather than generated there.",
    },
    "CKA_TOKEN": {
        True: "It is stored on the token (it outlives the session).",
        False: "It exists only for the session.",
    },
    "CKA_PRIVATE": {
        True: "Only a logged-in user can use it.",
        False: "It can be seen without logging in.",
    },
    "CKA_MODIFIABLE": {
        True: "Its attributes can still be changed.",
        False: "Its attributes can no longer be changed.",
    },
    "CKA_WRAP_WITH_TRUSTED": {
        True: "It can be wrapped only under a key the security officer marked trusted (the KEK).",
        False: "Any wrapping key the user can use could wrap it.",
    },
}
