"""errors: the typed failures of a ceremony, each carrying what went wrong and what to do.

Library code raises these; only the command line turns them into a message and an exit code.
"""

from __future__ import annotations


class CeremonyError(Exception):
    """A failure the operator can act on: one sentence on what is wrong, one on what to do."""

    exit_code = 1

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} {self.remedy}".strip()


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
