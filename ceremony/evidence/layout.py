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
# Evidence files that are statement subjects although they live in evidence/.
SUBJECT_OUTPUTS = (REPORT_HTML, REPORT_PDF)


def signer_key_path(file_stem: str) -> str:
    """Archive path of a person's public signing key."""
    return f"{SIGNERS_DIR}/{file_stem}.pub.pem"


def is_subject(name: str) -> bool:
    """Whether a workspace-relative path is covered by the statement.

    Hidden files and directories (runner state, editor checkpoints) are outside the evidence,
    as are sealing outputs other than the report; so is the archive itself."""
    parts = PurePosixPath(name).parts
    if any(part.startswith(".") for part in parts) or name == ARCHIVE_NAME:
        return False
    return parts[0] != EVIDENCE_DIR or name in SUBJECT_OUTPUTS


def is_sealed_file(name: str) -> bool:
    """Whether a path belongs in a sealed workspace or archive at all."""
    parts = PurePosixPath(name).parts
    return not (any(part.startswith(".") for part in parts) or name == ARCHIVE_NAME)


def workspace_files(root: Path) -> list[str]:
    """Sorted workspace-relative POSIX paths of every regular file that belongs to the seal."""
    names = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            name = path.relative_to(root).as_posix()
            if is_sealed_file(name):
                names.append(name)
    return sorted(names)
