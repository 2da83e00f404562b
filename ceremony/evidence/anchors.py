"""evidence.anchors: what an auditor holds apart from the archive, and how each is matched.

The reviewed plan (distributed before the day), signer keys obtained apart, and the paper record:
the archive's SHA-256 and the checkpoint heads the witnesses wrote down. Parses and compares only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ceremony.errors import CeremonyError, PlanError, UsageError
from ceremony.fingerprint import Fingerprint, fingerprint_public_key, words_to_bytes
from ceremony.people import Person
from ceremony.phases import BY_NUMBER, PHASES
from ceremony.workspace import COMPLETED

MIN_HEX = 8
MIN_WORDS = 2
_HEX = re.compile(r"[0-9a-f]+")
_FINAL_PHASE = PHASES[-1].number
_ANY_DAY = datetime(1970, 1, 1, tzinfo=UTC)


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

    def holds(self, heads: list[str]) -> tuple[bool, str]:
        """Whether one of the checkpoint's recorded heads begins as written, and in words."""
        if any(self.matches(h) for h in heads):
            return True, f"checkpoint {self.phase}'s head begins as written: {self.written}"
        if not heads:
            return False, f"the transcript records no checkpoint {self.phase}"
        shown = Fingerprint(bytes.fromhex(heads[-1]))
        return False, (
            f"checkpoint {self.phase}'s head is '{' '.join(shown.word_list[:4])} …' "
            f"({shown.short[:19]} …), not '{self.written}'"
        )

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
        """Read and validate the plan at `path` (PlanError when it is not a plan). Years after the
        ceremony its keys' expiry dates have passed: they are checked as of no particular day."""
        from ceremony.plan import parse_plan

        path = Path(path)
        try:
            content = path.read_bytes()
            text = content.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanError(f"Cannot read the plan {path} ({exc}).", "Check the path.") from None
        plan = parse_plan(text, path=path.resolve(), now=_ANY_DAY)
        keys = {p.name: fingerprint_public_key(p.public_key_pem).hex for p in plan.people}
        return cls(path, content, keys)


@dataclass(frozen=True)
class Anchors:
    """Everything given apart from the archive; empty when the auditor gave nothing."""

    reviewed_plan: ReviewedPlan | None = None
    signer_keys: tuple[str, ...] = ()  # SHA-256 of each DER SPKI
    archive_sha256: str | None = None
    heads: tuple[ExpectedHead, ...] = ()

    def check(
        self,
        plan: bytes | None,
        people: Iterable[Person],
        archive_sha256: str | None,
        events: Iterable[Any],
    ) -> list[tuple[str, bool, str]]:
        """(anchor, holds, what differs) for every anchor given, against what the archive holds:
        its plan.toml, the people its statement names, its digest and its transcript events."""
        results = []
        reviewed = self.reviewed_plan
        if reviewed:
            same = plan == reviewed.content
            results.append(
                (
                    "--plan",
                    same,
                    f"plan.toml is byte-identical to {reviewed.path}"
                    if same
                    else f"plan.toml differs from the reviewed plan {reviewed.path}",
                )
            )
            for person in people:
                if reviewed.keys.get(person.name) != person.key_id:
                    results.append(
                        (
                            "--plan",
                            False,
                            f"{person.name}'s key "
                            f"{person.fingerprint.short} is not the reviewed plan's",
                        )
                    )
        if self.archive_sha256:
            results.append(("--expect-sha256", *_digest_holds(self.archive_sha256, archive_sha256)))
        completions = [e for e in events if e.action == COMPLETED]
        for expected in self.heads:
            heads = [e.line_sha256 for e in completions if e.phase == expected.phase]
            results.append((f"--expect-head {expected.phase}", *expected.holds(heads)))
        return results

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


def _digest_holds(written: str, actual: str | None) -> tuple[bool, str]:
    if actual is None:
        return False, "a workspace has no archive SHA-256; verify archive.tar"
    if actual != written:
        return False, f"the archive's SHA-256 begins {actual[:16]}…, not {written[:16]}…"
    return True, "the archive's SHA-256 is the one written down"


def parse_sha256(text: str) -> str:
    """An --expect-sha256 value: 64 hex digits, spaces and case ignored."""
    compact = "".join(text.split()).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", compact):
        raise UsageError(
            f"--expect-sha256 {text!r} is not 64 hex digits.",
            "Give the archive's SHA-256 as the witnesses wrote it at the end of the ceremony.",
        )
    return compact
