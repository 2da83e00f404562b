"""evidence.roster: whose signatures count — the people and keys the sealed plan names.

Reads plan.toml and people/<name>.pub.pem from a workspace or archive, and checks them against
checkpoint 00, where the witnesses confirmed the plan's digest and each signing key. Reads only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ceremony.canonical import sha256_hex
from ceremony.checkpoint import PLAN_ITEM, signing_key_item
from ceremony.errors import VerificationError
from ceremony.evidence.facts import public_key_sha256
from ceremony.fingerprint import Fingerprint
from ceremony.people import Person, Quorum
from ceremony.workspace import COMPLETED

PLAN_FILE = "plan.toml"
PREFLIGHT_PHASE = "00"


def planned_key_path(name: str) -> str:
    """Where phase 00 put a person's public signing key in the workspace."""
    return f"people/{name}.pub.pem"


@dataclass(frozen=True)
class PlannedPerson:
    """A person as the plan names them, with the SHA-256 of their signing key's DER SPKI."""

    name: str
    role: str
    fingerprint: str

    @property
    def short(self) -> str:
        return Fingerprint(bytes.fromhex(self.fingerprint)).short


@dataclass(frozen=True)
class Roster:
    """The plan's people and quorum: the only signers and the rule a signature counts under."""

    plan_sha256: str
    people: Mapping[str, PlannedPerson]
    quorum: Mapping[str, int]

    def compare(
        self, people: Iterable[Person], quorum: Quorum
    ) -> tuple[set[str], list[tuple[str, str]]]:
        """The key fingerprints of the people who are the plan's, with the plan's role and key;
        and (subject, problem) for every way `people` and `quorum` differ from the plan."""
        people = list(people)
        bound, problems = set(), []
        if dict(self.quorum) != quorum.to_dict():
            problems.append(("quorum", "the signed quorum is not the plan's"))
        for person in people:
            planned = self.people.get(person.name)
            if planned is None:
                problems.append((person.name, f"{person.name} is not in the plan"))
            elif planned.role != person.role:
                problems.append((person.name, f"the plan makes {person.name} {planned.role}"))
            elif planned.fingerprint != person.key_id:
                problems.append(
                    (
                        person.name,
                        f"{person.name}'s key {person.fingerprint.short} "
                        f"is not the key the plan names for {person.name} ({planned.short})",
                    )
                )
            else:
                bound.add(person.key_id)
        for name in sorted(set(self.people) - {p.name for p in people}):
            problems.append((name, f"{name} is in the plan but not in the statement"))
        return bound, problems


def read_roster(files: Mapping[str, bytes]) -> Roster:
    """The roster of the plan in `files`; VerificationError saying what is missing or malformed."""
    content = files.get(PLAN_FILE)
    if content is None:
        raise _unbound("the evidence holds no plan.toml, so nothing says whose signatures count")
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
        raise _unbound("plan.toml is not a readable TOML plan") from None
    people: dict[str, PlannedPerson] = {}
    for entry in _list_of_tables(data.get("people")):
        name, role = entry.get("name"), entry.get("role")
        if not isinstance(name, str) or not isinstance(role, str) or name in people:
            raise _unbound("plan.toml lists a person without a unique name and a role")
        fingerprint = public_key_sha256(files.get(planned_key_path(name)))
        if fingerprint is None:
            raise _unbound(
                f"{planned_key_path(name)}, the key the plan names for {name}, is "
                "missing or not a public key"
            )
        people[name] = PlannedPerson(name, role, fingerprint)
    quorum = data.get("quorum")
    if not people or not _is_quorum(quorum):
        raise _unbound("plan.toml has no people or no quorum of role = count entries")
    return Roster(sha256_hex(content), people, dict(quorum))


def checkpoint_problem(roster: Roster, events: Iterable[Any]) -> str | None:
    """What checkpoint 00 contradicts in the roster, or None when every preflight's checkpoint
    shows exactly this plan's digest and these signing keys."""
    completions = [e for e in events if e.phase == PREFLIGHT_PHASE and e.action == COMPLETED]
    if not completions:
        return "the transcript records no checkpoint 00, where the witnesses confirm the plan"
    expected = {PLAN_ITEM: roster.plan_sha256} | {
        signing_key_item(p.name, p.role): p.fingerprint for p in roster.people.values()
    }
    for event in completions:
        items = (event.data or {}).get("checkpoint") if isinstance(event.data, dict) else None
        shown = {i.get("label"): i.get("sha256") for i in items or [] if isinstance(i, dict)}
        for label, value in expected.items():
            if shown.get(label) != value:
                return f"checkpoint 00 (transcript line {event.seq}) did not show this {label}"
    return None


def _list_of_tables(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _unbound("plan.toml has no [[people]] tables")
    return value


def _is_quorum(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value.values()
    )


def _unbound(why: str) -> VerificationError:
    return VerificationError(why, "Verify the archive the ceremony sealed, with its plan.")
