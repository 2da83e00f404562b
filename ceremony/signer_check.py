"""signer_check: whether each person of a plan can sign the evidence, and if not, why.

`plan check` uses it to find a missing, unreadable or mismatched key file (or one inside the
workspace) before the ceremony; phase 05 uses it to say, person by person, why someone is not
signing. Signs only a fixed probe to prove a PIN; never stores a PIN, key or signature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import Signer

from ceremony.errors import CeremonyError
from ceremony.fingerprint import public_key_der
from ceremony.hsm.module import hsm_step
from ceremony.plan import PersonPlan, Plan
from ceremony.plan_problems import PlanProblem

PROBE = b"ceremony: can this signer sign?"


def _spki(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_file_problem(person: PersonPlan, workspace: Path | None = None) -> str | None:
    """What is wrong with a `file:` signer's key file, or None (also for token signers).

    An encrypted key file's match is checked when it is opened at phase 05, with its passphrase."""
    path = person.key_file
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"names {path}, which cannot be read ({exc.strerror})"
    if workspace is not None and path.is_relative_to(workspace.resolve()):
        return f"names {path}, inside the workspace (sealing refuses a private key there)"
    if b"ENCRYPTED" in data:
        return None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return f"names {path}, which is not a PEM private key"
    if _spki(private.public_key()) != public_key_der(person.public_key_pem):
        return f"names {path}, whose key is not the one of {person.name}'s public_key"
    return None


def key_file_problems(plan: Plan, workspace: Path | None = None) -> list[PlanProblem]:
    """Every signer key file of the plan that would stop phase 05, as plan problems."""
    found = []
    for index, person in enumerate(plan.people):
        text = key_file_problem(person, workspace)
        if text is not None:
            remedy = (
                "Keep signing keys on their own medium, outside the workspace."
                if "inside the workspace" in text
                else "Give the key file that belongs to the public key in the plan; a relative "
                "path is relative to the plan file."
            )
            found.append(PlanProblem(f"people[{index}].signer", text, remedy))
    return found


@dataclass(frozen=True)
class SignerState:
    """One person at sealing time: a signer that has just signed a probe, or why there is none."""

    name: str
    signer: Signer | None
    reason: str = ""


def signer_state(planned: PersonPlan) -> SignerState:
    """Load the person's signer and prove it can sign; or say why not (missing file, no or wrong
    PIN, a key that does not match the plan)."""
    from ceremony.signers import load_signer

    variable, key_file = planned.pin_variable, planned.key_file
    problem = key_file_problem(planned)
    if problem is not None:
        return SignerState(planned.name, None, f"signer key file {problem.removeprefix('names ')}")
    needs_pin = key_file is None or b"ENCRYPTED" in key_file.read_bytes()
    if needs_pin and not os.environ.get(variable):
        what = "PIN of the signing token" if key_file is None else "passphrase of the key file"
        return SignerState(planned.name, None, f"no {what} ({variable} is not set)")
    try:
        signer = load_signer(planned.to_person(), key_file=key_file)
        with hsm_step("A probe signature"):
            signer.sign(PROBE)
    except CeremonyError as exc:
        return SignerState(planned.name, None, exc.message)
    except ValueError as exc:  # the token has no matching signing key
        return SignerState(planned.name, None, f"cannot sign ({' '.join(str(exc).split())})")
    return SignerState(planned.name, signer)
