"""errors: the typed failures of a ceremony, each carrying what went wrong and what to do.

Library code raises these; only the command line turns them into a message and an exit code, and
in a notebook cell each shows its sentence and remedy before the traceback.
"""

from __future__ import annotations

import traceback

# How a notebook cell shows an error (ANSI colours): the sentence red, the details dimmed.
RED, DIM, PLAIN = "\x1b[1;31m", "\x1b[2m", "\x1b[0m"


class CeremonyError(Exception):
    """A failure the operator can act on: one sentence on what is wrong, one on what to do."""

    exit_code = 1

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} {self.remedy}".strip()

    def to_record(self) -> dict[str, str]:
        """The refusal as the transcript keeps it: the error's kind, sentence and remedy."""
        return {"error": type(self).__name__, "message": self.message, "remedy": self.remedy}

    def _render_traceback_(self) -> list[str]:
        """How IPython shows this error in a notebook cell: the sentence and the remedy first,
        the traceback (for a bug report, kept in the executed notebook) dimmed below them."""
        lines = [f"{RED}{type(self).__name__}: {self.message}{PLAIN}"]
        if self.remedy:
            lines.append(f"What to do: {self.remedy}")
        details = "".join(traceback.format_exception(self)).rstrip("\n")
        return [*lines, "", f"{DIM}Details, for a bug report:\n{details}{PLAIN}"]


class UsageError(CeremonyError):
    """The input itself is unusable: a bad argument, a missing file, a malformed document."""

    exit_code = 2


class HsmError(CeremonyError):
    """The PKCS#11 module, token, login or an HSM operation failed or was refused."""


class ByokFormatError(UsageError):
    """A .byok package or KEK identifier does not have the shape Azure specifies."""


class PlanError(UsageError):
    """The ceremony plan is malformed or asks for something impossible."""


class VaultError(CeremonyError):
    """The key vault refused a request, could not be reached, or returned something unexpected."""


class VerificationError(CeremonyError):
    """Evidence did not verify: a digest, signature, chain link or quorum is wrong."""


class RefusedError(CeremonyError):
    """The ceremony refuses to continue because going on would mean guessing."""
