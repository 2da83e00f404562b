"""evidence: seal a ceremony workspace into a signed, deterministic archive, and verify one offline.

build_evidence() seals; verify_path() checks an archive or workspace. Nothing here needs a network
or an HSM to verify, and nothing sealed may hold a PIN, private key or ephemeral key.
"""

from __future__ import annotations

from ceremony.evidence.seal import EvidenceResult, build_evidence
from ceremony.evidence.verify import VerifyReport, verify_path

__all__ = ["EvidenceResult", "VerifyReport", "build_evidence", "verify_path"]
