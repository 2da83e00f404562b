"""evidence.anchors: what an auditor holds apart from the archive, and how each is matched.

The reviewed plan (distributed before the day), signer keys obtained apart, and the paper record:
the archive's SHA-256 and the checkpoint heads the witnesses wrote down. Parses and compares only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ceremony.errors import CeremonyError, UsageError
from ceremony.fingerprint import Fingerprint, fingerprint_public_key, words_to_bytes
from ceremony.phases import BY_NUMBER, PHASES

MIN_HEX = 8
MIN_WORDS = 2
_HEX = re.compile(r"[0-9a-f]+")
_FINAL_PHASE = PHASES[-1].number


@dataclass(frozen=True)
class ExpectedHead:
    """A checkpoint head as the witnesses wrote it: a hex prefix or the first PGP words."""

    phase: str
    written: str
    hex_prefix: str = ""
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ExpectedHead:
        """Read PHASE=VALUE; UsageError saying what is wrong with it."""
        phase, sep, value = text.partition("=")
        phase = phase.strip()
        remedy = (
            "Write PHASE=VALUE, e.g. --expect-head '03=adroitness bravado' or "
            "--expect-head 03=5f3c0a8e (at least 8 hex digits or 2 words)."
        )
        if not sep or phase not in BY_NUMBER:
            raise UsageError(f"--expect-head {text!r} does not start with a phase number.", remedy)
        if phase == _FINAL_PHASE:
            raise UsageError(
                f"Checkpoint {phase} shows the archive's SHA-256, not a transcript head.",
                "Give what the witnesses wrote there with --expect-sha256.",
            )
        compact = "".join(value.split()).lower()
        if _HEX.fullmatch(compact) and MIN_HEX <= len(compact) <= 64:
            return cls(phase, value.strip(), hex_prefix=compact)
        words = tuple(value.split())
        try:
            if len(words) < MIN_WORDS or len(words) > 32:
                raise UsageError("too few words", "")
            words_to_bytes(words)
        except CeremonyError:
            raise UsageError(
                f"--expect-head {text!r}: {value.strip()!r} is neither {MIN_HEX}+ hex digits nor "
                f"the first {MIN_WORDS}+ PGP words of a head.",
                remedy,
            ) from None
        return cls(phase, value.strip(), words=tuple(w.lower() for w in words))

    def matches(self, head: str) -> bool:
        """Whether the transcript head `head` (hex) begins with what was written."""
        fingerprint = Fingerprint(bytes.fromhex(head))
        if self.hex_prefix:
            return fingerprint.hex.startswith(self.hex_prefix)
        return tuple(w.lower() for w in fingerprint.word_list[: len(self.words)]) == self.words


@dataclass(frozen=True)
class ReviewedPlan:
    """The plan reviewed before the day: its bytes and the signing key it names for each person."""

    path: Path
    content: bytes
    keys: dict[str, str]  # person name -> SHA-256 of the DER SPKI

    @classmethod
    def load(cls, path: Path) -> ReviewedPlan:
        """Read and validate the plan at `path` (PlanError when it is not a plan)."""
        from ceremony.plan import load_plan

        plan = load_plan(path)
        keys = {p.name: fingerprint_public_key(p.public_key_pem).hex for p in plan.people}
        return cls(Path(path), plan.path.read_bytes(), keys)


@dataclass(frozen=True)
class Anchors:
    """Everything given apart from the archive; empty when the auditor gave nothing."""

    reviewed_plan: ReviewedPlan | None = None
    signer_keys: tuple[str, ...] = ()  # SHA-256 of each DER SPKI
    archive_sha256: str | None = None
    heads: tuple[ExpectedHead, ...] = ()

    def rests_on(self) -> str:
        """One sentence: what the verdict rests on besides the archive's own word."""
        parts = []
        if self.reviewed_plan:
            parts.append(f"the reviewed plan {self.reviewed_plan.path} and its keys")
        if self.signer_keys:
            parts.append(f"{len(self.signer_keys)} signer key(s) given apart")
        paper = (["the archive's SHA-256"] if self.archive_sha256 else []) + [
            f"checkpoint {h.phase}'s head" for h in self.heads
        ]
        if paper:
            parts.append("the paper record (" + ", ".join(paper) + ")")
        if not parts:
            return (
                "This verdict rests on the archive alone: whoever could rewrite it whole could "
                "pass. Anchor it with --plan, --expect-sha256 and --expect-head."
            )
        return "This verdict rests on the archive and " + "; ".join(parts) + "."


def parse_sha256(text: str) -> str:
    """An --expect-sha256 value: 64 hex digits, spaces and case ignored."""
    compact = "".join(text.split()).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", compact):
        raise UsageError(
            f"--expect-sha256 {text!r} is not 64 hex digits.",
            "Give the archive's SHA-256 as the witnesses wrote it at the end of the ceremony.",
        )
    return compact
