"""The local vault trusts only its own state and bounds its work: a state planted by another user,
or through a link, is refused; a hostile import is refused before any expensive arithmetic, and
other clients are answered meanwhile."""

from __future__ import annotations

import math
import os
import secrets
import threading
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import JsonWebKey
from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony.errors import UsageError
from ceremony.localvault.server import LocalVault

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def _b64(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


@ROOT_ONLY
@pytest.mark.parametrize("owned_by_other", ["state directory", "master.key", "vault.db"])
def test_a_state_owned_by_someone_else_is_refused(tmp_path, owned_by_other):
    state = tmp_path / "state"
    with LocalVault(state):
        pass  # a genuine state, made by this user
    target = state if owned_by_other == "state directory" else state / owned_by_other
    os.chown(target, 4242, 4242)
    with pytest.raises(UsageError, match="belongs to user id 4242"):
        LocalVault(state).start()


@pytest.mark.parametrize("link", ["state directory", "token"])
def test_a_state_reached_through_a_link_is_refused(tmp_path, link):
    real = tmp_path / "real"
    with LocalVault(real):
        pass
    if link == "state directory":
        state = tmp_path / "state"
        state.symlink_to(real)
        match = "is a link or not a directory"
    else:
        state = real
        planted = tmp_path / "attacker-token"
        planted.write_text("known-to-the-attacker")
        (real / "token").unlink()
        (real / "token").symlink_to(planted)
        match = "token is a link"
    with pytest.raises(UsageError, match=match):
        LocalVault(state).start()


def _hostile_rsa_jwk() -> JsonWebKey:
    """A genuine RSA key of 8,676 bits from two Mersenne primes (2^4423-1, 2^4253-1): cheap to
    make, and about half a minute of CPU for whoever checks it as a key before its size."""
    p, q, e = 2**4423 - 1, 2**4253 - 1, 65537
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    numbers = {"n": p * q, "e": e, "d": d, "p": p, "q": q, "dp": d % (p - 1), "dq": d % (q - 1)}
    return JsonWebKey(kty="RSA", qi=_b64(pow(q, -1, p)), **{k: _b64(v) for k, v in numbers.items()})


def test_a_hostile_import_is_refused_at_once_and_stalls_nobody(local_vault):
    """Refused on its size, before the key is checked, while another client's reads keep being
    answered within a second."""
    client = local_vault.key_client()
    client.create_ec_key("reader", curve="P-256")
    outcome: dict[str, object] = {}

    def attack() -> None:
        started = time.monotonic()
        try:
            local_vault.key_client().import_key("hostile", _hostile_rsa_jwk())
        except HttpResponseError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    attacker = threading.Thread(target=attack)
    attacker.start()
    slowest = 0.0
    while attacker.is_alive() or not slowest:
        started = time.monotonic()
        assert client.get_key("reader").name == "reader"
        slowest = max(slowest, time.monotonic() - started)
    attacker.join()
    error = outcome["error"]
    assert isinstance(error, HttpResponseError) and error.status_code == 400
    assert "8676 bits cannot be imported" in str(error.message)
    assert outcome["seconds"] < 1.0 and slowest < 1.0


def test_a_hostile_byok_payload_is_refused_by_its_size(local_vault):
    """The same key wrapped for the KEK: refused on its size before it is parsed as a key."""
    from cryptography.hazmat.primitives import serialization

    from tests.fixtures_localvault import byok_ciphertext, byok_file, kek_public_key

    client = local_vault.key_client()
    kek = client.create_rsa_key("hostile-kek", size=2048, hardware_protected=True,
                                key_operations=["import"])  # fmt: skip
    p, q = 2**4423 - 1, 2**4253 - 1
    d = pow(65537, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(65537, p * q))  # fmt: skip
    started = time.monotonic()
    der = numbers.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    package = byok_file(kek.id, byok_ciphertext(kek_public_key(kek), der))
    with pytest.raises(HttpResponseError, match="more than any key Azure imports"):
        client.import_key(
            "hostile-byok", JsonWebKey(kty="RSA-HSM", t=package), hardware_protected=True
        )
    assert time.monotonic() - started < 2.0


def test_an_oversized_rsa_modulus_is_refused_by_its_size(local_vault):
    client = local_vault.key_client()
    n = secrets.randbits(16_384) | (1 << 16_383) | 1
    big = JsonWebKey(kty="RSA", n=_b64(n), e=_b64(65537), d=_b64(n - 2), p=b"\x03", q=b"\x05",
                     dp=b"\x01", dq=b"\x01", qi=b"\x01")  # fmt: skip
    with pytest.raises(HttpResponseError, match="16384 bits cannot be imported"):
        client.import_key("too-big", big)
