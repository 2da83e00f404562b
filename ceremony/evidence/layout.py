"""evidence.layout: which workspace files are evidence subjects and where sealing puts its outputs.

Names paths only; never reads or writes file contents.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

EVIDENCE_DIR = "evidence"
ARCHIVE_NAME = "archive.tar"
REPORT_HTML = "evidence/report.html"
REPORT_PDF = "evidence/report.pdf"
SUMS = "evidence/SHA256SUMS"
STATEMENT = "evidence/statement.json"
ENVELOPE = "evidence/statement.dsse.json"
SIGNERS_DIR = "evidence/signers"
TRANSCRIPT = "transcript.jsonl"
# Binds a workspace to one ceremony and plan (written by ceremony.workspace).
BINDING_FILE = "ceremony.json"
# The seal's own staging folder, renamed to evidence/ when complete.
STAGING_DIR = ".evidence-staging"
# The archive cannot hold the record of its own sealing: what happens after it goes here.
AFTER_SEAL_DIR = ".after-seal"
# Evidence files that are statement subjects although they live in evidence/.
SUBJECT_OUTPUTS = (REPORT_HTML, REPORT_PDF)


def signer_key_path(file_stem: str) -> str:
    """Archive path of a person's public signing key."""
    return f"{SIGNERS_DIR}/{file_stem}.pub.pem"


def is_subject(name: str) -> bool:
    """Whether a workspace-relative path is covered by the statement: every sealed file but the
    sealing outputs other than the report."""
    return PurePosixPath(name).parts[0] != EVIDENCE_DIR or name in SUBJECT_OUTPUTS


def is_hidden(name: str) -> bool:
    """A name with a hidden part: nothing the workbook seals is hidden, so sealing refuses it."""
    return any(part.startswith(".") for part in PurePosixPath(name).parts)


def workspace_files(root: Path) -> list[str]:
    """Sorted workspace-relative POSIX paths of every regular file the seal covers: all of them,
    hidden or not, but the archive and what was recorded after the seal. Refuses (naming it) a
    link, a device or a hard-linked file instead of passing over it."""
    from ceremony.ledger import scan

    return [
        name
        for name in scan(root)
        if name != ARCHIVE_NAME and PurePosixPath(name).parts[0] != AFTER_SEAL_DIR
    ]
