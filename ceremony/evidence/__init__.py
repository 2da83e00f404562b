"""evidence: seal a ceremony workspace into a signed, deterministic archive, and verify one offline.

build_evidence() seals; verify_path() checks an archive or workspace. Nothing here needs a network
or an HSM to verify, and nothing sealed may hold a PIN, private key or ephemeral key.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ceremony.evidence.seal import EvidenceResult, build_evidence
    from ceremony.evidence.verify import VerifyReport, verify_path

__all__ = ["EvidenceResult", "VerifyReport", "build_evidence", "verify_path"]

# Loaded on first use: the phase notebooks import `ceremony.evidence.records` on every kernel start
# and need neither the signing nor the verifying machinery.
_HOMES = {
    "EvidenceResult": "ceremony.evidence.seal",
    "build_evidence": "ceremony.evidence.seal",
    "VerifyReport": "ceremony.evidence.verify",
    "verify_path": "ceremony.evidence.verify",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
