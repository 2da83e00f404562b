"""A finished ceremony workspace made with pyca/cryptography, for evidence tests and the benchmark.

It follows the BYOK construction (RSA-OAEP-SHA1 of an AES key, then AES-KWP of the target key) and
the record schema of ceremony.evidence.records. Private keys stay in memory and are returned only
so tests can prove the secrets scan never finds them in the evidence.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.keywrap import aes_key_wrap, aes_key_wrap_with_padding

from ceremony.checkpoint import PLAN_ITEM, CheckpointItem, signing_key_item
from ceremony.events import AES_CHALLENGE_WRAPPED, KEY_GENERATED, KEY_IMPORTED, KEY_WRAPPED
from ceremony.evidence.records import (
    ChallengeRecord,
    ImportRecord,
    KekRecord,
    KeyRecord,
    PreflightRecord,
)
from ceremony.fingerprint import fingerprint_public_key
from ceremony.people import Person, Quorum
from ceremony.signers import create_file_signing_key
from ceremony.software import Software
from ceremony.transcript import Transcript

CEREMONY_TIME = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
KEK_KID = "https://contoso-byok.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"
PIN = "custodian-pin-7319"
# What the offline side's preflight records of its software: installed from an offline bundle.
SOFTWARE = Software(
    version="0.1.0",
    install={"kind": "bundle", "bundle_sha256": "5a" * 32, "changed_files": [],
             "wheel": "byok_ceremony-0.1.0-py3-none-any.whl", "wheel_sha256": "b1" * 32},
    python="CPython 3.11.2",
    distributions={"byok-ceremony": "0.1.0", "cryptography": "44.0.1", "python-pkcs11": "0.10.1"},
)  # fmt: skip


@dataclass
class WorkspaceSecrets:
    """Everything secret that was near the workspace, for the scan to look for."""

    pins: list[str] = field(default_factory=list)
    secret_bytes: list[bytes] = field(default_factory=list)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_der(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _wrap(kek_public, target: bytes, secrets: WorkspaceSecrets) -> bytes:
    ephemeral = os.urandom(32)
    secrets.secret_bytes.append(ephemeral)
    block = kek_public.encrypt(
        ephemeral,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )
    return block + aes_key_wrap_with_padding(ephemeral, target)


def make_workspace(
    root: Path,
    key_specs: list[tuple[str, str, int | str]] | None = None,
    *,
    kek_bits: int = 2048,
    notebook_bytes: int = 2000,
    rehearsal: bool = True,
) -> WorkspaceSecrets:
    """Write a workspace as phases 00-04 would leave it; return what must never be sealed."""
    key_specs = key_specs or [("app-rsa", "RSA-HSM", 2048), ("app-ec", "EC-HSM", "P-256"),
                              ("app-aes", "oct-HSM", 256)]  # fmt: skip
    secrets = WorkspaceSecrets(pins=[PIN])
    root.mkdir(parents=True, exist_ok=True)
    clock = iter(range(10_000))
    transcript = Transcript(
        root / "transcript.jsonl",
        clock=lambda: CEREMONY_TIME.replace(hour=9, minute=0, second=next(clock) % 60),
    )
    hsm_info = {
        "library": {"cryptoki_version": "2.40", "description": "Implementation of PKCS11",
                    "library_version": "2.6", "manufacturer": "SoftHSM",
                    "path": "/usr/lib/softhsm/libsofthsm2.so"},
        "token": {"label": "byok", "manufacturer": "SoftHSM project", "model": "SoftHSM v2",
                  "serial": "1a2b3c", "firmware_version": "2.6"},
        "tokens": [],
        "mechanisms": [{"code": "0x9", "name": "CKM_RSA_PKCS_OAEP"},
                       {"code": "0x210a", "name": "CKM_AES_KEY_WRAP_PAD"}],
    }  # fmt: skip
    preflight = PreflightRecord(
        tools={"softhsm2": "2.6.1", "python-pkcs11": "0.10.1"},
        host={"hostname": "offline-1", "platform": "Linux"},
        hsm=hsm_info,
        self_test={"conformant": False, "deviation": "softhsm-zero-pad", "mechanism": "two-step"},
        rehearsal=rehearsal,
        warnings=["Rehearsal: SoftHSM2 zero-pads wrapped keys (fixed in 2.7.0)."]
        if rehearsal
        else [],
        software=SOFTWARE.to_dict(),
    )
    _write(root / "preflight.json", preflight.to_json())
    transcript.append("00-preflight", "administrator", "preflight recorded", {"rehearsal": True})

    kek_private = rsa.generate_private_key(65537, kek_bits)
    kek_public = kek_private.public_key()
    secrets.secret_bytes.append(_private_der(kek_private))
    kek_pem = _pem(kek_public)
    kek_fp = fingerprint_public_key(kek_pem).hex
    _write(root / "kek.pem", kek_pem)
    kek = KekRecord(KEK_KID, "RSA-HSM", kek_bits, ["import"], kek_fp, "vault", kek_fp)
    _write(root / "kek.json", kek.to_json())
    transcript.append("01-kek", "administrator", "KEK fetched", {"kid": KEK_KID, "sha256": kek_fp})

    for index, (name, kty, param) in enumerate(key_specs):
        jwk = None
        if kty == "RSA-HSM":
            private = rsa.generate_private_key(65537, int(param))
            target, size, curve = _private_der(private), int(param), None
        elif kty == "EC-HSM":
            curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
            private = ec.generate_private_key(curves[str(param)])
            target, size, curve = _private_der(private), None, str(param)
        else:
            private = None
            target, size, curve = os.urandom(int(param) // 8), int(param), None
        secrets.secret_bytes.append(target)
        public_fp = None
        if private is not None:
            pem = _pem(private.public_key())
            _write(root / f"keys/{name}.pub.pem", pem)
            public_fp = fingerprint_public_key(pem).hex
            jwk = _public_jwk(private.public_key(), curve)
        record = KeyRecord(
            name=name, kty=kty, size=size, curve=curve, label=name, id_hex=f"{index + 1:04x}",
            attributes={"CKA_SENSITIVE": True, "CKA_EXTRACTABLE": True, "CKA_MODIFIABLE": False},
            public_key_sha256=public_fp, hsm=hsm_info,
        )  # fmt: skip
        _write(root / f"keys/{name}.json", record.to_json())
        transcript.append("02", "custodian-1", KEY_GENERATED, {"name": name, "public": public_fp})
        byok = {
            "schema_version": "1.0.0",
            "header": {"kid": KEK_KID, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
            "ciphertext": b64url(_wrap(kek_public, target, secrets)),
            "generator": "byok-ceremony 0.1.0; SoftHSM v2 2.6",
        }
        byok_bytes = json.dumps(byok).encode()
        _write(root / f"keys/{name}.byok", byok_bytes)
        byok_sha256 = hashlib.sha256(byok_bytes).hexdigest()
        transcript.append(
            "03", "custodian-1", KEY_WRAPPED, {"name": name, "byok_sha256": byok_sha256}
        )
        if private is None:
            challenge = _aes_challenge(name, target)
            challenge_bytes = challenge.record.to_json()
            _write(root / f"keys/{name}.challenge.json", challenge_bytes)
            digest = hashlib.sha256(challenge_bytes).hexdigest()
            transcript.append(
                "03", "custodian-1", AES_CHALLENGE_WRAPPED, {"name": name, "sha256": digest}
            )
        imported = ImportRecord(
            name=name,
            kid=f"https://contoso-byok.vault.azure.net/keys/{name}/{index + 1:032x}",
            kty=kty,
            byok_sha256=byok_sha256,
            public_key_jwk=jwk,
            proof=_proof(private, curve) if private else challenge.proof,
            imported_at="2026-11-28T11:00:00Z",
            attributes={"enabled": True, "exportable": False},
        )
        _write(root / f"keys/{name}.import.json", imported.to_json())
        told = {"name": name, "kid": imported.kid, "byok_sha256": byok_sha256,
                "sha256": hashlib.sha256(imported.to_json()).hexdigest(),
                "proof": imported.proof["method"]}  # fmt: skip
        transcript.append("04", "administrator", KEY_IMPORTED, told)

    for number, phase in enumerate(("00_preflight", "01_kek", "02_generate")):
        cell = {
            "cell_type": "code",
            "source": "ceremony.step()",
            "outputs": [{"text": "x" * notebook_bytes}],
        }
        _write(
            root / f"notebooks/{phase}.ipynb", json.dumps({"cells": [cell], "n": number}).encode()
        )
    transcript.append("05-evidence", "administrator", "sealing", None)
    return secrets


def _public_jwk(public, curve: str | None) -> dict:
    if curve is None:
        numbers = public.public_numbers()
        modulus = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        return {"kty": "RSA-HSM", "n": b64url(modulus), "e": b64url(numbers.e.to_bytes(3, "big"))}
    numbers = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    return {"kty": "EC-HSM", "crv": curve, "x": b64url(numbers.x.to_bytes(size, "big")),
            "y": b64url(numbers.y.to_bytes(size, "big"))}  # fmt: skip


@dataclass
class AesChallenge:
    """Phase 03's challenge record for an AES key and phase 04's unwrap proof of it."""

    record: ChallengeRecord
    proof: dict


def _aes_challenge(name: str, key: bytes) -> AesChallenge:
    challenge = os.urandom(32)
    record = ChallengeRecord.of(name, challenge, aes_key_wrap(key, challenge))
    proof = {"method": "unwrap", "algorithm": record.algorithm, "wrapped": record.wrapped,
             "challenge_sha256": record.challenge_sha256, "unwrapped": challenge.hex(),
             "checked_by": "tests"}  # fmt: skip
    return AesChallenge(record, proof)


def _proof(private, curve: str | None) -> dict:
    challenge = os.urandom(32)
    algorithm = hashes.SHA384() if curve == "P-384" else hashes.SHA256()
    h = hashes.Hash(algorithm)
    h.update(challenge)
    prehashed = h.finalize()
    if curve is None:
        signature = private.sign(
            prehashed, padding.PSS(padding.MGF1(algorithm), 32), utils.Prehashed(algorithm)
        )
        alg = "PS256"
    else:
        der = private.sign(prehashed, ec.ECDSA(utils.Prehashed(algorithm)))
        r, s = utils.decode_dss_signature(der)
        size = (private.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        alg = "ES384" if curve == "P-384" else "ES256"
    return {"method": "sign", "algorithm": alg, "challenge": challenge.hex(),
            "signature": b64url(signature)}  # fmt: skip


def make_people(
    directory: Path, workspace: Path | None = None, key_names: tuple[str, ...] = ()
) -> tuple[list[Person], Quorum]:
    """Two custodians, a witness and an administrator with key files; an auditor who signs not.

    With `workspace`, they are also enrolled there as phase 00 would: plan.toml naming them,
    people/<name>.pub.pem, and a checkpoint 00 in the transcript showing the plan and keys."""
    directory.mkdir(parents=True, exist_ok=True)
    people = []
    for name, role in (("alice", "custodian"), ("bob", "custodian"), ("wendy", "witness"),
                       ("ada", "administrator")):  # fmt: skip
        reference, pem = create_file_signing_key(directory / f"{name}.key")
        people.append(Person(name, role, pem, reference))
    _, auditor_pem = create_file_signing_key(directory / "audrey.key")
    people.append(Person("audrey", "auditor", auditor_pem, ""))
    quorum = Quorum({"custodian": 2, "witness": 1})
    if workspace is not None:
        enrol(workspace, people, quorum, key_names)
    return people, quorum


def plan_text(
    people: list[Person],
    quorum: Quorum,
    key_names: tuple[str, ...] = (),
    key_records: tuple[KeyRecord, ...] = (),
) -> str:
    """A valid plan naming `people` (keys in people/<name>.pub.pem beside it), `quorum`, and the
    keys: those of `key_records` as they were made, else `key_names` as EC P-256 keys."""
    keys = "".join(
        f'[[keys]]\nname = "{r.name}"\ntype = "{r.kty}"\n'
        + (f'curve = "{r.curve}"\nkey_ops = ["sign"]\n\n' if r.curve else "")
        + (f'size = {r.size}\nkey_ops = ["sign"]\n\n' if r.kty == "RSA-HSM" else "")
        + (f'size = {r.size}\nkey_ops = ["encrypt"]\n\n' if r.kty == "oct-HSM" else "")
        for r in key_records
    ) or "".join(
        f'[[keys]]\nname = "{name}"\ntype = "EC-HSM"\ncurve = "P-256"\nkey_ops = ["sign"]\n\n'
        for name in key_names or ("app-ec",)
    )
    people_tables = "".join(
        f'[[people]]\nname = "{p.name}"\nrole = "{p.role}"\n'
        f'public_key = "people/{p.name}.pub.pem"\nsigner = "{p.signer or "file:none"}"\n\n'
        for p in people
    )
    rule = "".join(f"{role} = {n}\n" for role, n in quorum.to_dict().items())
    return (
        '[ceremony]\nid = "evidence-test"\npurpose = "Evidence tests."\n\n'
        '[vault]\nurl = "https://contoso-byok.managedhsm.azure.net"\nflavour = "managed-hsm"\n\n'
        f'[kek]\nname = "kek"\nfingerprint = "{"5f" * 32}"\n\n'
        '[hsm]\nmodule = "/usr/lib/softhsm/libsofthsm2.so"\ntoken = "evidence-test"\n\n'
        f"{keys}{people_tables}[quorum]\n{rule}"
    )


def enrol(
    root: Path, people: list[Person], quorum: Quorum, key_names: tuple[str, ...] = ()
) -> None:
    """What phase 00 leaves about the people: the plan, their keys, and checkpoint 00. The plan
    names the keys the workspace holds records of (or `key_names`)."""
    records = tuple(
        KeyRecord.from_json(path.read_bytes(), path.name)
        for path in sorted((root / "keys").glob("*.json"))
        if path.name.count(".") == 1
    )
    plan = plan_text(people, quorum, key_names, () if key_names else records).encode()
    _write(root / "plan.toml", plan)
    for person in people:
        _write(root / f"people/{person.name}.pub.pem", person.public_key_pem.encode())
    items = [CheckpointItem(PLAN_ITEM, hashlib.sha256(plan).hexdigest())] + [
        CheckpointItem(signing_key_item(p.name, p.role), p.fingerprint.hex) for p in people
    ]
    Transcript(root / "transcript.jsonl").append(
        "00", "ada", "phase-completed", {"checkpoint": [i.to_dict() for i in items], "notes": []}
    )
