"""evidence.facts: read the structured records of a workspace (name -> bytes) into one view.

Shared by sealing (to write the predicate) and verifying (to check them); reads, never writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ceremony.errors import CeremonyError
from ceremony.events import NOTE
from ceremony.evidence.layout import TRANSCRIPT
from ceremony.evidence.records import (
    WORKSPACE_FILES,
    ChallengeRecord,
    ImportRecord,
    KekRecord,
    KeyRecord,
    PreflightRecord,
)
from ceremony.fingerprint import fingerprint_public_key
from ceremony.software import Software, differences
from ceremony.transcript import Event, read_events

# keys/<name>.json; Key Vault key names are letters, digits and dashes, so other records
# beside it (keys/<name>.import.json, keys/<name>.challenge.json) never match.
_KEY_RECORD = re.compile(r"^keys/([A-Za-z0-9-]+)\.json$")
# preflight.json from the first side, preflight-<host>-<time>.json from each side after it.
_PREFLIGHT_RECORD = re.compile(r"^preflight(-[A-Za-z0-9_-]+)?\.json$")


@dataclass
class KeyFacts:
    """Everything the workspace says about one target key."""

    name: str
    record: KeyRecord | None = None
    public_pem: bytes | None = None
    byok: bytes | None = None
    challenge: ChallengeRecord | None = None  # AES keys: the challenge the HSM wrapped
    imported: ImportRecord | None = None


@dataclass
class CeremonyFacts:
    """The records found, and the problems met while reading them (file name -> message)."""

    preflight: PreflightRecord | None = None  # the first side's (preflight.json)
    preflights: dict[str, PreflightRecord] = field(default_factory=dict)  # every side's, by file
    kek: KekRecord | None = None
    kek_pem: bytes | None = None
    keys: list[KeyFacts] = field(default_factory=list)
    transcript_head: str | None = None
    transcript_events: int = 0
    events: list[Event] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Side:
    """One side of the ceremony as its preflight recorded it: where, and with what software."""

    record_name: str
    host: str
    with_hsm: bool
    software: Software | None  # None: the record has none, or one that cannot be read

    @property
    def label(self) -> str:
        return f"{self.host} ({'with' if self.with_hsm else 'without'} the HSM, {self.record_name})"


def preflight_names(files: Mapping[str, bytes]) -> list[str]:
    """Preflight records: the first side's preflight.json first, then each further side's."""
    first = WORKSPACE_FILES["preflight"]
    return sorted(filter(_PREFLIGHT_RECORD.match, files), key=lambda n: (n != first, n))


def sides(facts: CeremonyFacts) -> list[Side]:
    """Each side that recorded a preflight, in the order of preflight_names."""
    found = []
    for name, record in facts.preflights.items():
        try:
            software = Software.from_dict(record.software) if record.software else None
        except (KeyError, TypeError, ValueError):
            software = None
        host = str(record.host.get("hostname", "?"))
        found.append(Side(name, host, bool(record.hsm), software))
    return found


def software_disagreements(found: list[Side]) -> list[str]:
    """Sides that ran different software than the first side, or recorded none, one line each."""
    if not found:
        return []
    first, lines = found[0], []
    for side in found:
        if side.software is None:
            lines.append(f"{side.label} recorded no readable software identity")
    for side in found[1:]:
        if first.software is not None and side.software is not None:
            differ = differences(first.software, side.software)
            if differ:
                lines.append(
                    f"{first.label} and {side.label} ran different software: {'; '.join(differ)}"
                )
    return lines


def key_names(files: Mapping[str, bytes]) -> list[str]:
    """Target key names: one per keys/<name>.json (not counting the other records)."""
    return sorted({m.group(1) for m in map(_KEY_RECORD.match, files) if m})


def read_facts(files: Mapping[str, bytes]) -> CeremonyFacts:
    """Parse every known record present; a record that does not parse becomes a problem."""
    facts = CeremonyFacts()
    for name in preflight_names(files):
        record = _load(facts, files, name, PreflightRecord)
        if record is not None:
            facts.preflights[name] = record
    facts.preflight = facts.preflights.get(WORKSPACE_FILES["preflight"])
    facts.kek = _load(facts, files, WORKSPACE_FILES["kek"], KekRecord)
    facts.kek_pem = files.get(WORKSPACE_FILES["kek_pem"])
    for name in key_names(files):
        key = KeyFacts(name)
        key.record = _load(facts, files, WORKSPACE_FILES["key"].format(name=name), KeyRecord)
        key.public_pem = files.get(WORKSPACE_FILES["key_public"].format(name=name))
        key.byok = files.get(WORKSPACE_FILES["byok"].format(name=name))
        key.challenge = _load(
            facts, files, WORKSPACE_FILES["challenge"].format(name=name), ChallengeRecord
        )
        key.imported = _load(
            facts, files, WORKSPACE_FILES["import"].format(name=name), ImportRecord
        )
        facts.keys.append(key)
    if TRANSCRIPT in files:
        try:
            events = read_events(files[TRANSCRIPT], TRANSCRIPT)
        except CeremonyError as exc:
            facts.problems[TRANSCRIPT] = exc.message
        else:
            facts.events = events
            facts.transcript_events = len(events)
            facts.transcript_head = events[-1].line_sha256 if events else None
            facts.phases = _phases(events)
    return facts


def public_key_sha256(pem: bytes | None) -> str | None:
    """Fingerprint hex of a PEM public key, None when absent or unreadable."""
    if not pem:
        return None
    try:
        return fingerprint_public_key(pem).hex
    except CeremonyError:
        return None


def _load(facts: CeremonyFacts, files: Mapping[str, bytes], path: str, kind: type) -> Any:
    if path not in files:
        return None
    try:
        return kind.from_json(files[path], path)
    except CeremonyError as exc:
        facts.problems[path] = exc.message
        return None


def _phases(events: list) -> list[dict[str, Any]]:
    """Per phase: its time span, events and hosts, and — where the runner recorded them — the
    side of the air gap that ran it and how that side was cut off."""
    phases: dict[str, dict[str, Any]] = {}
    for event in events:
        entry = phases.setdefault(
            event.phase,
            {"phase": event.phase, "first": event.time, "events": 0, "hosts": [], "sides": []},
        )
        entry["last"] = event.time
        entry["events"] += 1
        if event.host not in entry["hosts"]:
            entry["hosts"].append(event.host)
        data = event.data if isinstance(event.data, dict) else {}
        if event.action == NOTE and isinstance(data.get("side"), str):
            side = f"{data['side']}: {data.get('air_gap', '')}".rstrip(": ")
            if side not in entry["sides"]:
                entry["sides"].append(side)
    return list(phases.values())
