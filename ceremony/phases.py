"""phases: the ceremony's six phases — their order, which side of the air gap each belongs to,
which notebook runs it and what it leaves in the workspace. Pure data; it never runs anything."""

from __future__ import annotations

from dataclasses import dataclass

from ceremony.errors import UsageError

ONLINE, OFFLINE, BOTH, EITHER = "online", "offline", "both", "either"
SIDES = {
    ONLINE: "the online machine (reaches the vault; never holds the HSM)",
    OFFLINE: "the air-gapped machine with the HSM (no network)",
    BOTH: "each machine, once, before its first phase",
    EITHER: "either machine",
}


@dataclass(frozen=True)
class Phase:
    """One step of the ceremony, executed as one notebook."""

    number: str
    name: str
    side: str
    purpose: str
    leaves: tuple[str, ...]

    @property
    def notebook(self) -> str:
        return f"{self.number}_{self.name}.ipynb"

    @property
    def title(self) -> str:
        return f"{self.number} {self.name}"


PHASES: tuple[Phase, ...] = (
    Phase(
        "00",
        "preflight",
        BOTH,
        "validate the plan; record tools, host, clock, HSM token and mechanisms; the roster",
        ("preflight.json", "plan.toml", "people/"),
    ),
    Phase(
        "01",
        "kek",
        ONLINE,
        "fetch the key exchange key and compare its fingerprint with the one agreed out of band",
        ("kek.pem", "kek.json"),
    ),
    Phase(
        "02",
        "generate",
        OFFLINE,
        "generate each target key inside the HSM and record its public half and attributes",
        ("keys/<name>.json", "keys/<name>.pub.pem"),
    ),
    Phase(
        "03",
        "wrap",
        OFFLINE,
        "wrap each key under the KEK (CKM_RSA_AES_KEY_WRAP) into a .byok package; each AES key "
        "also wraps a challenge for phase 04",
        ("keys/<name>.byok", "keys/<name>.challenge.json"),
    ),
    Phase(
        "04",
        "upload",
        ONLINE,
        "import each .byok into the vault and prove the cloud holds the HSM's key",
        ("keys/<name>.import.json",),
    ),
    Phase(
        "05",
        "evidence",
        EITHER,
        "seal the workspace: manifest, signatures by quorum, report, archive, verification",
        ("evidence/", "archive.tar"),
    ),
)
BY_NUMBER = {p.number: p for p in PHASES}


def phase(ref: str) -> Phase:
    """A phase named by number ('2', '02'), name ('generate') or notebook stem ('02_generate')."""
    text = ref.strip().lower().removesuffix(".ipynb")
    for p in PHASES:
        if text in (p.number, p.number.lstrip("0") or "0", p.name, f"{p.number}_{p.name}"):
            return p
    names = ", ".join(p.title for p in PHASES)
    raise UsageError(f"There is no phase {ref!r}.", f"Name one of: {names}.")


def select(spec: str | None) -> tuple[Phase, ...]:
    """Phases from a list like '02,03' or a range like '01-03'; None or 'all' means every phase.

    The result is always in ceremony order, without repeats."""
    if spec is None or spec.strip().lower() == "all":
        return PHASES
    chosen: set[str] = set()
    for part in filter(None, (s.strip() for s in spec.split(","))):
        if "-" in part and not part.startswith("-"):
            first, last = (phase(x) for x in part.split("-", 1))
            if first.number > last.number:
                raise UsageError(f"Phase range {part!r} runs backwards.", "Write it low-high.")
            chosen.update(n for n in BY_NUMBER if first.number <= n <= last.number)
        else:
            chosen.add(phase(part).number)
    if not chosen:
        raise UsageError(f"No phases in {spec!r}.", "Give phases like 02,03 or 01-04.")
    return tuple(p for p in PHASES if p.number in chosen)


def predecessors(p: Phase) -> tuple[Phase, ...]:
    """Phases that must be complete before `p` may start."""
    return tuple(q for q in PHASES if q.number < p.number)
