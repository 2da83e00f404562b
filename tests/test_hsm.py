"""ceremony.hsm against a real SoftHSM2 token; every wrap is undone by independent code."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

from ceremony.errors import HsmError, UsageError
from ceremony.hsm import open_session, require_conformant
from ceremony.hsm.mechanisms import mechanism_name
from ceremony.hsm.module import OPEN_SESSIONS
from ceremony.hsm.selftest import ZERO_PAD
from ceremony.keyspec import KeySpec
from tests.fixtures_hsm import (
    make_software_kek,
    strip_der_zero_padding,
    unwrap_with_cryptography,
    unwrap_with_openssl,
)

ALL_SPECS = [
    KeySpec("RSA-HSM", size=2048),
    KeySpec("RSA-HSM", size=3072),
    KeySpec("EC-HSM", curve="P-256"),
    KeySpec("EC-HSM", curve="P-384"),
    KeySpec("EC-HSM", curve="P-521"),
    KeySpec("EC-HSM", curve="P-256K"),
    KeySpec("oct-HSM", size=128),
    KeySpec("oct-HSM", size=192),
    KeySpec("oct-HSM", size=256),
]


@pytest.fixture
def session(hsm_token):
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as opened:
        yield opened


@pytest.fixture(scope="module")
def self_test(hsm_token):
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as opened:
        return opened.self_test()


def label_for(spec: KeySpec, suffix: str = "") -> str:
    return f"{spec.kty}-{spec.size or spec.curve}{suffix}"


def recover(wrapped: bytes, kek, self_test, spec: KeySpec) -> bytes:
    """Unwrap with pyca/cryptography; strip the zero padding only where the self-test saw it."""
    plain = unwrap_with_cryptography(wrapped, kek)
    if spec.family != "AES" and self_test.deviation == ZERO_PAD:
        plain = strip_der_zero_padding(plain)
    return plain


def assert_same_key(session, key, plain: bytes) -> None:
    """The unwrapped key is the token's: same public key, or same AES ciphertext for a block."""
    if key.spec.family == "AES":
        assert len(plain) * 8 == key.spec.size
        block = bytes(range(16))
        token_key = session.raw.get_key(label=key.label, object_class=ObjectClass.SECRET_KEY)
        in_hsm = token_key.encrypt(block, mechanism=Mechanism.AES_ECB)
        encryptor = Cipher(algorithms.AES(plain), modes.ECB()).encryptor()
        assert in_hsm == encryptor.update(block) + encryptor.finalize()
        return
    private = serialization.load_der_private_key(plain, password=None)
    derived = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert derived.decode() == key.public_key_pem
    if key.spec.family == "EC":
        expected = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}
        assert private.curve.name == expected.get(key.spec.curve, "secp256k1")
    else:
        assert private.key_size == key.spec.size
        assert private.public_key().public_numbers().e == 65537


def test_describe_names_library_token_and_mechanisms(session, hsm_token):
    info = session.describe()
    assert info.library.manufacturer == "SoftHSM"
    assert info.token.label == hsm_token.label
    assert info.token.manufacturer == "SoftHSM project"
    assert info.token.model == "SoftHSM v2"
    assert info.token.serial and info.token.firmware_version.startswith("2.")
    names = {m.name for m in info.mechanisms}
    assert {"CKM_RSA_PKCS_OAEP", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"} <= names
    record = info.to_dict()
    assert {"name": "CKM_AES_KEY_WRAP_PAD", "code": "0x210a"} in record["mechanisms"]


def test_unknown_mechanisms_are_shown_in_hex():
    assert mechanism_name(0x80001234) == "0x80001234"
    assert mechanism_name(0x1054) == "CKM_RSA_AES_KEY_WRAP"
    assert mechanism_name(0x210B) == "CKM_AES_KEY_WRAP_KWP"


def test_self_test_detects_softhsm_zero_padding(self_test):
    # SoftHSM2 2.6.1 offers no KWP and zero-pads before RFC 5649 under 0x210A.
    assert self_test.mechanism == "CKM_AES_KEY_WRAP_PAD"
    assert self_test.mechanism_code == 0x210A
    assert not self_test.conformant
    assert self_test.deviation == ZERO_PAD
    assert self_test.oaep_sha1
    assert not self_test.native_rsa_aes
    outcomes = {c.name: c.outcome for c in self_test.candidates}
    assert outcomes == {"CKM_AES_KEY_WRAP_KWP": "not offered", "CKM_AES_KEY_WRAP_PAD": ZERO_PAD}
    assert self_test.to_dict()["deviation_description"].startswith("it zero-pads")
    # Both paths have their own verdict; auto took the two steps, and says why.
    assert self_test.native == "not offered"
    assert self_test.two_step_verdict() == (
        "CKM_AES_KEY_WRAP_PAD + CKM_RSA_PKCS_OAEP SHA-1, NOT conformant (zero-pad-before-rfc5649)"
    )
    assert (self_test.path, self_test.chosen) == ("two-step", "auto")
    assert self_test.reason == "auto: the native mechanism is not offered"


def test_non_conformant_token_is_refused_unless_rehearsal(self_test):
    with pytest.raises(HsmError, match="zero-pad-before-rfc5649"):
        require_conformant(self_test, rehearsal=False)
    warning = require_conformant(self_test, rehearsal=True)
    assert warning.startswith("REHEARSAL ONLY") and ZERO_PAD in warning


def test_self_test_leaves_no_objects(session):
    before = len(list(session.raw.get_objects()))
    session.self_test()
    assert len(list(session.raw.get_objects())) == before


@pytest.mark.parametrize("spec", ALL_SPECS, ids=KeySpec.describe)
def test_generate_wrap_unwrap_with_cryptography(session, self_test, software_kek, spec):
    key = session.generate(spec, label_for(spec))
    assert key.spec == spec
    assert len(key.id_hex) == 32
    assert key.attributes["CKA_SENSITIVE"] and key.attributes["CKA_EXTRACTABLE"]
    assert key.attributes["CKA_LOCAL"] and key.attributes["CKA_ALWAYS_SENSITIVE"]
    assert not key.attributes["CKA_NEVER_EXTRACTABLE"]  # extractable, so wrapping can happen
    assert (key.public_key_pem is None) == (spec.family == "AES")
    wrapped = session.wrap_for_byok(key.label, software_kek.public_pem, self_test)
    assert len(wrapped) > 256 and (len(wrapped) - 256) % 8 == 0
    plain = recover(wrapped, software_kek, self_test, spec)
    assert_same_key(session, key, plain)
    record = key.to_evidence("target", {"token": "t"})
    assert (record.name, record.label, record.kty) == ("target", key.label, spec.kty)
    if spec.family == "AES":
        assert record.public_key_sha256 is None
    else:
        der = (
            serialization.load_der_private_key(plain, password=None)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        assert record.public_key_sha256 == hashlib.sha256(der).hexdigest()


def test_rsa_4096_under_a_4096_bit_kek(session, self_test, tmp_path):
    spec = KeySpec("RSA-HSM", size=4096)
    kek = make_software_kek(tmp_path, 4096)
    key = session.generate(spec, label_for(spec))
    wrapped = session.wrap_for_byok(
        key.label,
        kek.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        self_test,
    )
    assert len(wrapped) > 512
    assert_same_key(session, key, recover(wrapped, kek, self_test, spec))


@pytest.mark.parametrize(
    "spec",
    [KeySpec("RSA-HSM", size=2048), KeySpec("EC-HSM", curve="P-256"), KeySpec("oct-HSM", size=256)],
    ids=KeySpec.describe,
)
def test_openssl_cli_unwraps_the_same_key(session, self_test, software_kek, tmp_path, spec):
    key = session.generate(spec, label_for(spec, "-openssl"))
    wrapped = session.wrap_for_byok(key.label, software_kek.public_pem, self_test)
    plain = unwrap_with_openssl(wrapped, software_kek, tmp_path)
    if spec.family != "AES" and self_test.deviation == ZERO_PAD:
        plain = strip_der_zero_padding(plain)
    assert plain == recover(wrapped, software_kek, self_test, spec)
    assert_same_key(session, key, plain)
    if spec.family == "EC":  # and openssl reads the PKCS#8 itself
        der = tmp_path / "key.der"
        der.write_bytes(plain)
        text = subprocess.run(
            ["openssl", "pkey", "-inform", "DER", "-in", str(der), "-pubout"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert text == key.public_key_pem


def test_private_and_secret_values_are_never_readable(session):
    for spec in (KeySpec("EC-HSM", curve="P-256"), KeySpec("oct-HSM", size=128)):
        key = session.generate(spec, label_for(spec, "-sensitive"))
        cls = ObjectClass.SECRET_KEY if spec.family == "AES" else ObjectClass.PRIVATE_KEY
        obj = session.raw.get_key(label=key.label, object_class=cls)
        with pytest.raises(p11x.AttributeSensitive):
            obj[Attribute.VALUE]


def test_existing_label_is_refused(session):
    spec = KeySpec("EC-HSM", curve="P-256")
    session.generate(spec, "taken")
    with pytest.raises(HsmError, match="already holds an object labelled 'taken'"):
        session.generate(KeySpec("oct-HSM", size=256), "taken")


def test_the_public_half_of_an_interrupted_generation_is_removed_and_nothing_else(session):
    """A key pair whose private half was never made (a kill between SoftHSM2's two objects):
    its public half goes, and the label can be generated again; a whole key is never touched."""
    made = session.generate(KeySpec("EC-HSM", curve="P-256"), "half-made")
    private = session.raw.get_key(label="half-made", object_class=ObjectClass.PRIVATE_KEY)
    private.destroy()
    assert session.find_key("half-made") is None and session.label_in_use("half-made")
    assert session.remove_half_made("half-made") == 1
    assert not session.label_in_use("half-made")
    again = session.generate(KeySpec("EC-HSM", curve="P-256"), "half-made")
    assert again.public_key_pem != made.public_key_pem
    with pytest.raises(HsmError, match="already holds an object labelled 'half-made'"):
        session.remove_half_made("half-made")
    assert session.find_key("half-made") == again


def test_find_key_describes_what_generate_made(session):
    for spec in (
        KeySpec("RSA-HSM", size=2048),
        KeySpec("EC-HSM", curve="P-384"),
        KeySpec("oct-HSM", size=192),
    ):
        made = session.generate(spec, label_for(spec, "-find"))
        assert session.find_key(made.label) == made
    assert session.find_key("no such key") is None


def test_ephemeral_key_is_destroyed(session, self_test, software_kek):
    key = session.generate(KeySpec("EC-HSM", curve="P-256"), "ephemeral-check")
    session.wrap_for_byok(key.label, software_kek.public_pem, self_test)
    session_secrets = session.raw.get_objects(
        {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: False}
    )
    assert list(session_secrets) == []


def test_kek_that_is_not_rsa_is_refused(session, self_test):
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(UsageError, match="not an RSA public key"):
        session.wrap_for_byok("ephemeral-check", ec_pem, self_test)


def test_kek_under_2048_bits_is_refused(session, self_test, tmp_path):
    small = make_software_kek(tmp_path, 1024)
    with pytest.raises(UsageError, match="1024 bits"):
        session.wrap_for_byok("ephemeral-check", small.public_pem, self_test)


def test_garbage_kek_is_refused(session, self_test):
    with pytest.raises(UsageError, match="SubjectPublicKeyInfo"):
        session.wrap_for_byok("ephemeral-check", b"not a key", self_test)


@pytest.mark.parametrize("size", [128, 256])
def test_wrap_challenge_is_rfc3394_under_the_target_key(session, self_test, software_kek, size):
    """pyca/cryptography unwraps the HSM's blob with the key value recovered from the .byok."""
    spec = KeySpec("oct-HSM", size=size)
    key = session.generate(spec, f"challenge-wrap-{size}")
    value = recover(
        session.wrap_for_byok(key.label, software_kek.public_pem, self_test),
        software_kek,
        self_test,
        spec,
    )
    assert_same_key(session, key, value)
    token_key = session.raw.get_key(label=key.label, object_class=ObjectClass.SECRET_KEY)
    assert token_key[Attribute.WRAP] is True and token_key[Attribute.UNWRAP] is False
    challenge = session.random_bytes(32)
    wrapped = session.wrap_challenge(key.label, challenge)
    assert len(wrapped) == 40
    assert aes_key_unwrap(value, wrapped) == challenge
    with pytest.raises(InvalidUnwrap):
        aes_key_unwrap(bytes(len(value)), wrapped)
    # The challenge object is gone again: only the target key carries no label clash.
    assert not list(session.raw.get_objects({Attribute.KEY_TYPE: KeyType.GENERIC_SECRET}))


def test_wrap_challenge_refuses_bad_input(session):
    session.generate(KeySpec("EC-HSM", curve="P-256"), "challenge-ec")
    with pytest.raises(HsmError, match="not an AES key"):
        session.wrap_challenge("challenge-ec", bytes(32))
    session.generate(KeySpec("oct-HSM", size=128), "challenge-short")
    with pytest.raises(HsmError, match="RFC 3394"):
        session.wrap_challenge("challenge-short", bytes(12))


def test_wrong_pin_is_refused(hsm_token):
    with (
        pytest.raises(HsmError, match="PinIncorrect"),
        open_session(hsm_token.module_path, hsm_token.label, pin="wrong-pin"),
    ):
        pass


def test_unknown_module_path_is_refused():
    with (
        pytest.raises(HsmError, match="does not exist"),
        open_session("/nonexistent/libpkcs11.so", "x", pin="1234"),
    ):
        pass


def test_a_file_that_is_not_a_module_is_refused(tmp_path):
    fake = tmp_path / "fake.so"
    fake.write_bytes(b"not a shared object")
    with (
        pytest.raises(HsmError, match="could not be loaded as a PKCS#11 module"),
        open_session(str(fake), "x", pin="1234"),
    ):
        pass


def test_missing_token_lists_the_tokens_present(hsm_token):
    with (
        pytest.raises(HsmError, match=rf"No token with label 'absent'.*'{hsm_token.label}'"),
        open_session(hsm_token.module_path, "absent", pin="1234"),
    ):
        pass


def test_token_by_serial(session, hsm_token):
    serial = session.describe().token.serial
    with open_session(hsm_token.module_path, serial=serial, pin=None) as by_serial:
        assert by_serial.describe().token.label == hsm_token.label


def test_token_created_by_another_process_is_found(softhsm):
    # softhsm2-util writes the token while this process has the module initialised: the
    # module is initialised again, which is allowed because no session is open.
    assert OPEN_SESSIONS.get(softhsm.module_path, 0) == 0
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "outside",
            "--pin",
            "4321",
            "--so-pin",
            "87654321",
        ],
        env={**softhsm.environ(), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    with open_session(softhsm.module_path, "outside", pin="4321") as opened:
        assert opened.describe().token.label == "outside"
