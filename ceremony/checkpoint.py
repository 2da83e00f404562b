"""checkpoint: what witnesses see and confirm after each phase — fingerprints, transcript head.

Owns the checkpoint's content, its text/HTML rendering and the typed confirmation rule. It never
decides whether a phase succeeded and never records anything secret (only digests and names).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ceremony.errors import CeremonyError, RefusedError, UsageError
from ceremony.fingerprint import Fingerprint
from ceremony.phases import PHASES

CONFIRMED = "checkpoint-confirmed"
ANSWER_REFUSED = "checkpoint-answer-refused"
PLAN_ITEM = "plan fingerprint (plan.toml, the reviewed plan)"
FINAL_NOTE = (
    "Write down the archive's SHA-256 above (hex or words): it is the ceremony's last "
    "fingerprint and covers every value shown before. An auditor gives it to "
    "`ceremony verify --expect-sha256`."
)
CHALLENGE_WORDS = 2
CHALLENGE_SAID = "two"  # CHALLENGE_WORDS as the notebooks and the prompts say it
MAX_ATTEMPTS = 3


def signing_key_item(name: str, role: str) -> str:
    """The label under which checkpoint 00 shows a person's signing key (the verifier reads it)."""
    return f"signing key fingerprint of {name} ({role})"


@dataclass(frozen=True)
class CheckpointItem:
    """One value the witnesses compare: a label and the SHA-256 it must have."""

    label: str
    sha256: str

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(bytes.fromhex(self.sha256))

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointItem:
        return cls(str(data["label"]), str(data["sha256"]))


@dataclass(frozen=True)
class Checkpoint:
    """The state after a phase: its items and the transcript head that commits to all of them."""

    phase: str
    title: str
    items: tuple[CheckpointItem, ...]
    head: str
    notes: tuple[str, ...] = field(default=())
    # Values the witnesses compare as they are (a token serial, a key identifier, a clock).
    facts: tuple[tuple[str, str], ...] = field(default=())

    @property
    def head_fingerprint(self) -> Fingerprint:
        return Fingerprint(bytes.fromhex(self.head))

    @property
    def final(self) -> bool:
        """The last checkpoint comes after the seal: its head lies outside the archive, so it
        shows only the archive's SHA-256, which an auditor can always recompute."""
        return self.phase == PHASES[-1].number and bool(self.items)

    @property
    def witnessed(self) -> Fingerprint:
        """The value the witnesses write down and the operator types the first words of."""
        return self.items[0].fingerprint if self.final else self.head_fingerprint

    @property
    def witnessed_label(self) -> str:
        return "the archive's SHA-256" if self.final else "the transcript head"

    @property
    def challenge(self) -> str:
        """What the operator types: the first words of the witnessed value, as read aloud."""
        return " ".join(self.witnessed.word_list[:CHALLENGE_WORDS])

    def render_text(self, *, qr: bool = True) -> str:
        """The terminal form: each item as grouped hex, PGP words and a QR code."""
        rule = "=" * 78
        lines = [rule, f"CHECKPOINT after phase {self.title}", rule]
        lines += [f"  {label}: {value}" for label, value in self.facts]
        for item in self.items:
            fp = item.fingerprint
            lines += [f"* {item.label}", f"    sha256  {fp.short}", f"    words   {fp.words}"]
            if qr:
                lines += ["    " + row for row in fp.qr_terminal().splitlines()]
        for note in self.notes:
            lines.append(f"! {note}")
        if self.final:
            lines += ["-" * 78, FINAL_NOTE, rule]
            return "\n".join(lines)
        head = self.head_fingerprint
        lines += [
            "-" * 78,
            f"Transcript head  {head.short}",
            f"                 {head.words}",
            rule,
        ]
        return "\n".join(lines)

    def render_html(self) -> str:
        """The notebook form, with SVG QR codes."""
        rows = [
            f"<tr><td><b>{html.escape(label)}</b></td><td>{html.escape(value)}</td></tr>"
            for label, value in self.facts
        ]
        for item in self.items:
            fp = item.fingerprint
            rows.append(
                f"<tr><td><b>{html.escape(item.label)}</b><br><code>{fp.short}</code>"
                f"<br><i>{fp.words}</i></td><td>{fp.qr_svg(module_mm=0.6)}</td></tr>"
            )
        notes = "".join(f"<p>&#9888; {html.escape(n)}</p>" for n in self.notes)
        closing = f"<p>{html.escape(FINAL_NOTE)}</p>"
        if not self.final:
            head = self.head_fingerprint
            rows.append(
                f"<tr><td><b>Transcript head</b> (the operator types its first {CHALLENGE_SAID} "
                f"words)<br><code>{head.short}</code><br><i>{head.words}</i></td>"
                f"<td>{head.qr_svg(module_mm=0.6)}</td></tr>"
            )
            closing = ""
        return (
            f"<h3>Checkpoint after phase {html.escape(self.title)}</h3>"
            f"<table>{''.join(rows)}</table>{notes}{closing}"
        )

    def _repr_html_(self) -> str:
        return self.render_html()

    def __str__(self) -> str:
        return self.render_text(qr=False)

    def __repr__(self) -> str:
        shown = f"{self.witnessed_label} {self.witnessed.hex}"
        return f"<Checkpoint after phase {self.title}: {len(self.items)} item(s), {shown}>"


@dataclass(frozen=True)
class Confirmation:
    """Who confirmed a checkpoint, and how (typed by the operator, or automatic in a rehearsal)."""

    witnesses: tuple[str, ...]
    automatic: bool
    typed: str

    def to_dict(self, checkpoint: Checkpoint) -> dict[str, Any]:
        return {
            "confirmed_head": checkpoint.head,
            "witnesses": list(self.witnesses),
            "automatic": self.automatic,
            "typed": self.typed,
            "items": [i.to_dict() for i in checkpoint.items],
        }


def ask_confirmation(
    checkpoint: Checkpoint,
    witnesses: Sequence[str],
    required: int,
    ask: Callable[[str], str] = input,
    refused: Callable[[dict[str, Any]], None] = lambda _: None,
) -> Confirmation:
    """Ask the operator to type the challenge words, then who of the witnesses agreed.

    A wrong answer is handed to `refused` (for the transcript) and asked again; only the
    MAX_ATTEMPTS-th wrong answer to the same question stops the run."""
    words_prompt = (
        f"Witnesses: compare every value above with the HSM display or your notes.\n"
        f"When all agree, type the first {CHALLENGE_SAID} words of {checkpoint.witnessed_label}: "
    )
    typed = _ask_until_right(
        "head-words", words_prompt, lambda answer: _check_words(checkpoint, answer), ask, refused
    )
    names_prompt = (
        f"Who confirmed? Type the names of the witnesses who compared the values "
        f"(the plan's witnesses: {', '.join(witnesses)}): "
    )
    names = _ask_until_right(
        "witnesses", names_prompt, lambda a: parse_witnesses(a, witnesses, required), ask, refused
    )
    return Confirmation(names, automatic=False, typed=typed)


def _check_words(checkpoint: Checkpoint, answer: str) -> str:
    typed = " ".join(answer.split()).lower()
    if typed != checkpoint.challenge.lower():
        raise RefusedError(
            f"Those are not the first words of {checkpoint.witnessed_label}.",
            "Read them again from the screen.",
        )
    return typed


def _ask_until_right(
    question: str,
    prompt: str,
    check: Callable[[str], Any],
    ask: Callable[[str], str],
    refused: Callable[[dict[str, Any]], None],
) -> Any:
    """Ask `prompt` until `check` accepts the answer; every refused answer is reported."""
    again = prompt.splitlines()[-1]  # asked again, after the reason, on a mistake
    attempt = 0
    while True:
        attempt += 1
        try:
            answer = ask(prompt)
        except EOFError:
            refused({"question": question, "answer": None, "reason": "the input ended"})
            raise RefusedError(
                "The checkpoint was not confirmed: the input ended before an answer.",
                "Run the ceremony in a terminal; rerun to resume here.",
            ) from None
        try:
            return check(answer)
        except CeremonyError as exc:
            reason = f"{exc.message} {exc.remedy}".strip()
        refused({"question": question, "answer": answer, "reason": reason, "attempt": attempt})
        if attempt == MAX_ATTEMPTS:
            raise RefusedError(
                f"The checkpoint was not confirmed: {MAX_ATTEMPTS} answers to {question!r} were "
                f"refused, the last because: {reason}",
                "Stop and compare the screen with the witnesses' notes; then resume here (rerun "
                "`ceremony run`, or this cell in JupyterLab).",
            )
        prompt = f"That is not it: {reason}\nAgain: {again}"


def automatic_confirmation(witnesses: Sequence[str], required: int) -> Confirmation:
    """A rehearsal's confirmation: recorded as automatic, never mistaken for a witnessed one."""
    return Confirmation(tuple(witnesses[: max(required, 1)]), automatic=True, typed="")


def parse_witnesses(answer: str, witnesses: Iterable[str], required: int) -> tuple[str, ...]:
    """Names typed by the operator, checked against the plan's witnesses and the quorum."""
    known = {w.lower(): w for w in witnesses}
    names: list[str] = []
    for raw in answer.replace(",", " ").split():
        name = known.get(raw.lower())
        if name is None:
            raise UsageError(
                f"{raw!r} is not a witness in the plan.",
                f"Name witnesses from: {', '.join(known.values())}.",
            )
        if name not in names:
            names.append(name)
    if len(names) < max(required, 1):
        raise RefusedError(
            f"{len(names)} witness(es) named; the plan requires {max(required, 1)}.",
            f"Type the names of the witnesses who compared the values, from: "
            f"{', '.join(known.values())}.",
        )
    return tuple(names)
