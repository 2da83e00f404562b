"""People, quorum and signers: key ids, quorum counting, file keys and a real SoftHSM2 token."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.dsse import Envelope

from ceremony.errors import PlanError, RefusedError, UsageError
from ceremony.people import Person, Quorum, check_people
from ceremony.signers import (
    create_file_signing_key,
    create_token_signing_key,
    load_signer,
    parse_reference,
)


def _pem(private) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    "private",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 2048),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["p256", "p384", "rsa", "ed25519"],
)
def test_key_id_is_the_spki_fingerprint(private) -> None:
    # One key, one fingerprint: the DSSE key id is the SHA-256 of the DER SPKI that witnesses
    # compare, as `openssl pkey -pubin -outform DER | sha256sum` computes it.
    pem = _pem(private)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem.encode(),
                         capture_output=True, check=True).stdout  # fmt: skip
    person = Person("Alice", "custodian", pem, "")
    assert person.key_id == hashlib.sha256(der).hexdigest() == person.fingerprint.hex
    assert person.key.keyid == person.key_id


def test_person_validation() -> None:
    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(PlanError, match="role 'boss'"):
        Person("Alice", "boss", pem)
    with pytest.raises(PlanError, match="not usable"):
        Person("../etc", "witness", pem)
    with pytest.raises(PlanError, match="public signing key"):
        Person("Alice", "witness", "not a key")
    person = Person("Mary Ann", "witness", pem, "file:/keys/m.pem")
    assert person.pin_env_var == "CEREMONY_PIN_MARY_ANN" and person.file_stem == "mary-ann"
    assert Person.from_dict(person.to_dict()) == person
    with pytest.raises(PlanError, match="unknown fields: pin"):
        Person.from_dict({**person.to_dict(), "pin": "1234"})
    with pytest.raises(PlanError, match="does not belong"):
        Person.from_dict({**person.to_dict(), "key_id": "00" * 32})


def _people() -> list[Person]:
    def make(name: str, role: str) -> Person:
        return Person(name, role, _pem(ec.generate_private_key(ec.SECP256R1())), f"file:{name}")

    return [make("A", "custodian"), make("B", "custodian"), make("C", "custodian"),
            make("W", "witness"), make("X", "administrator")]  # fmt: skip


def test_quorum_counts_distinct_people_per_role() -> None:
    people = _people()
    quorum = Quorum({"custodian": 2, "witness": 1})
    ids = {p.name: p.key_id for p in people}
    assert quorum.evaluate(people, [ids["A"], ids["B"], ids["W"]]).met
    result = quorum.evaluate(people, [ids["A"], ids["A"], ids["W"], ids["X"]])
    assert not result.met and result.missing == {"custodian": 1}
    assert result.describe() == "quorum not met: missing 1 custodian"
    assert quorum.evaluate(people, ["f" * 64]).missing == {"custodian": 2, "witness": 1}
    assert quorum.describe() == "2 custodians and 1 witness"


def test_quorum_validation() -> None:
    with pytest.raises(PlanError, match="empty"):
        Quorum({})
    with pytest.raises(PlanError, match="not one of"):
        Quorum({"boss": 1})
    with pytest.raises(PlanError, match="at least 1"):
        Quorum({"custodian": 0})
    people = _people()
    Quorum({"custodian": 3}).check_possible(people)
    with pytest.raises(PlanError, match="lacks signers"):
        Quorum({"custodian": 4}).check_possible(people)


def test_check_people_refuses_shared_keys_and_names() -> None:
    people = _people()
    check_people(people)
    twin = Person("Z", "witness", people[0].public_key_pem, "")
    with pytest.raises(PlanError, match="same signing key"):
        check_people([*people, twin])
    with pytest.raises(PlanError, match="Two people"):
        check_people(
            [*people, Person("a", "witness", _pem(ec.generate_private_key(ec.SECP256R1())))]
        )


def test_signer_references() -> None:
    assert parse_reference("file:/k/a.pem").path == "/k/a.pem"
    ref = parse_reference("pkcs11:token=alice;id=0a;module-path=/usr/lib/x.so")
    assert (ref.token, ref.key_id, ref.module_path) == ("alice", 10, "/usr/lib/x.so")
    assert parse_reference(str(ref)) == ref
    for bad in ("alice.pem", "pkcs11:token=a", "pkcs11:token=a;id=zz", "pkcs11:token=a;id=1;pin=1"):
        with pytest.raises(PlanError):
            parse_reference(bad)


def _sign_and_verify(person: Person) -> None:
    envelope = Envelope(b'{"x": 1}', "application/vnd.in-toto+json", {})
    envelope.sign(load_signer(person))
    assert list(envelope.verify([person.key], 1)) == [person.key_id]


def test_file_signer(tmp_path: Path, monkeypatch) -> None:
    reference, pem = create_file_signing_key(tmp_path / "plain.key")
    _sign_and_verify(Person("Plain", "witness", pem, reference))
    with pytest.raises(RefusedError, match="already exists"):
        create_file_signing_key(tmp_path / "plain.key")
    assert (tmp_path / "plain.key").stat().st_mode & 0o777 == 0o600

    reference, pem = create_file_signing_key(tmp_path / "locked.key", passphrase="open sesame")
    person = Person("Locked", "custodian", pem, reference)
    monkeypatch.setenv("CEREMONY_PIN_LOCKED", "wrong")
    with pytest.raises(UsageError, match="wrong passphrase"):
        load_signer(person)
    monkeypatch.setenv("CEREMONY_PIN_LOCKED", "open sesame")
    _sign_and_verify(person)

    stranger = _pem(ec.generate_private_key(ec.SECP256R1()))
    other = Person("Other", "custodian", stranger, f"file:{tmp_path / 'plain.key'}")
    with pytest.raises(UsageError, match="does not match their public key"):
        load_signer(other)


def test_token_signer_on_softhsm(hsm_token, monkeypatch) -> None:
    reference, pem = create_token_signing_key(hsm_token.module_path, hsm_token.label, hsm_token.pin)
    assert reference.startswith(f"pkcs11:token={hsm_token.label};id=01;module-path=")
    person = Person("Tess", "custodian", pem, reference)
    monkeypatch.setenv(person.pin_env_var, hsm_token.pin)
    _sign_and_verify(person)
    monkeypatch.setenv(person.pin_env_var, "not-the-pin")
    with pytest.raises(Exception):  # noqa: B017 - the token refuses the login
        _sign_and_verify(person)
