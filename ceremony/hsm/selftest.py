"""hsm.selftest: the known-answer test that decides which mechanism really performs RFC 5649.

Owns the decision and its record for the evidence; uses only throwaway session objects with
published test values, never a ceremony key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, keywrap, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x
from pkcs11.util import biginteger

from ceremony.errors import HsmError
from ceremony.hsm.mechanisms import (
    CKM_AES_KEY_WRAP_KWP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_RSA_AES_KEY_WRAP,
    OAEP_SHA1,
    RsaAesWrapParam,
    as_mechanism,
    mechanism_name,
)
from ceremony.hsm.module import hsm_step

# Published-style test values: nothing here is secret. The payload is 20 bytes, not a multiple
# of 8, so padding behaviour shows.
TEST_KEK = bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
TEST_PAYLOAD = bytes.fromhex("c37b7e6492584340bed12207808941155068f738")
TEST_AES_256 = bytes(range(32))

CONFORMANT = "rfc5649"
ZERO_PAD = "zero-pad-before-rfc5649"
PKCS7_RFC3394 = "pkcs7-pad-then-rfc3394"
UNKNOWN = "unknown-output"

DEVIATIONS = {
    ZERO_PAD: "it zero-pads the key to a multiple of 8 bytes before RFC 5649 wrapping, so the "
    "unwrapped key carries up to 7 extra zero bytes (SoftHSM2 2.6.x; fixed in 2.7.0)",
    PKCS7_RFC3394: "it applies PKCS#7 padding then RFC 3394, which Azure cannot unwrap",
    UNKNOWN: "its output matches no known padding scheme",
}
# Preference: the spec's RFC 5649 mechanism first, then the one many vendors use for it.
_CANDIDATES = (CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD)


@dataclass(frozen=True)
class CandidateResult:
    """What one candidate mechanism did with the test payload."""

    code: int
    name: str
    outcome: str  # CONFORMANT, a deviation name, "error: <cause>" or "not offered"


@dataclass(frozen=True)
class WrapSelfTest:
    """The self-test's verdict: which mechanism wraps the target, and whether it is conformant."""

    mechanism: str | None
    mechanism_code: int | None
    conformant: bool
    deviation: str | None
    oaep_sha1: bool
    native_rsa_aes: bool
    candidates: tuple[CandidateResult, ...] = field(default=())

    def summary(self) -> str:
        """One line for the operator and the transcript."""
        if self.mechanism is None:
            return "wrap self-test: no mechanism performs RFC 5649 on this token"
        how = (
            "native CKM_RSA_AES_KEY_WRAP"
            if self.native_rsa_aes
            else (f"{self.mechanism} + CKM_RSA_PKCS_OAEP")
        )
        verdict = "conformant" if self.conformant else f"NOT conformant ({self.deviation})"
        return f"wrap self-test: {how}, {verdict}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for the evidence."""
        record = asdict(self)
        record["mechanism_code"] = None if self.mechanism_code is None else hex(self.mechanism_code)
        record["candidates"] = [{**asdict(c), "code": hex(c.code)} for c in self.candidates]
        record["deviation_description"] = DEVIATIONS.get(self.deviation or "")
        record["verdict"] = self.summary()
        return record


def classify(kek: bytes, payload: bytes, output: bytes) -> str:
    """Name what a token's 'AES key wrap with padding' did, by recomputing each known scheme."""
    if output == keywrap.aes_key_wrap_with_padding(kek, payload):
        return CONFORMANT
    zeros = b"\0" * (-len(payload) % 8)
    if zeros and output == keywrap.aes_key_wrap_with_padding(kek, payload + zeros):
        return ZERO_PAD
    for block_bits in (64, 128):
        padder = padding.PKCS7(block_bits).padder()
        padded = padder.update(payload) + padder.finalize()
        if output == keywrap.aes_key_wrap(kek, padded):
            return PKCS7_RFC3394
    return UNKNOWN


def run_self_test(session: Any, offered: set[int]) -> WrapSelfTest:
    """Wrap the test payload with every candidate the token offers and choose.

    Then check RSA-OAEP (SHA-1) the same way, and native CKM_RSA_AES_KEY_WRAP when offered,
    against a software RSA key made for this test only.
    """
    created: list[Any] = []
    try:
        with hsm_step("Importing the self-test keys"):
            kek = _session_secret(session, KeyType.AES, TEST_KEK, wrap=True)
            created.append(kek)
            payload = _session_secret(session, KeyType.GENERIC_SECRET, TEST_PAYLOAD)
            created.append(payload)
        results = tuple(_try_candidate(kek, payload, code, offered) for code in _CANDIDATES)
        chosen = _choose(results)
        if chosen is None:
            return WrapSelfTest(None, None, False, None, False, False, results)
        test_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with hsm_step("Importing the self-test RSA public key"):
            numbers = test_rsa.public_key().public_numbers()
            rsa_pub = import_rsa_public(session, numbers.n, numbers.e)
            created.append(rsa_pub)
            aes = _session_secret(session, KeyType.AES, TEST_AES_256)
            created.append(aes)
        oaep_ok = _oaep_ok(rsa_pub, aes, test_rsa)
        native = CKM_RSA_AES_KEY_WRAP in offered and _native_ok(rsa_pub, payload, test_rsa)
        conformant = chosen.outcome == CONFORMANT and oaep_ok
        deviation = (
            None
            if conformant
            else (chosen.outcome if chosen.outcome != CONFORMANT else "oaep-sha1-mismatch")
        )
        if native:
            conformant, deviation = True, None
        return WrapSelfTest(
            chosen.name, chosen.code, conformant, deviation, oaep_ok, native, results
        )
    finally:
        for obj in created:
            obj.destroy()


def require_conformant(result: WrapSelfTest, rehearsal: bool) -> str | None:
    """Refuse a non-conformant token, except in a rehearsal, which gets a warning to record."""
    if result.mechanism is None:
        raise HsmError(
            "No mechanism on this token performs RFC 5649 AES key wrap with padding.",
            "Use an HSM that offers CKM_AES_KEY_WRAP_KWP/PAD or CKM_RSA_AES_KEY_WRAP.",
        )
    if result.conformant:
        return None
    what = DEVIATIONS.get(result.deviation or "", "its RSA-OAEP SHA-1 output did not decrypt")
    message = f"The token's {result.mechanism} is not conformant ({result.deviation}): {what}."
    if not rehearsal:
        raise HsmError(
            message,
            "Use an HSM whose wrap passes the self-test (to rehearse: SoftHSM2 2.7.0 or later, "
            "`ceremony rehearse --module LIB`); only a plain rehearsal, without --strict, "
            "allows this and records it.",
        )
    return f"REHEARSAL ONLY: {message} Packages from this token are for rehearsal, not Azure."


def import_rsa_public(session: Any, modulus: int, exponent: int) -> Any:
    """An RSA public key as a session object that may wrap (CKA_WRAP), from modulus and exponent."""
    return session.create_object(
        {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.MODULUS: biginteger(modulus),
            Attribute.PUBLIC_EXPONENT: biginteger(exponent),
            Attribute.TOKEN: False,
            Attribute.WRAP: True,
            Attribute.ENCRYPT: False,
            Attribute.VERIFY: False,
        }
    )


def _session_secret(session: Any, key_type: KeyType, value: bytes, wrap: bool = False) -> Any:
    return session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: key_type,
            Attribute.VALUE: value,
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: False,
            Attribute.EXTRACTABLE: not wrap,
            Attribute.WRAP: wrap,
        }
    )


def _try_candidate(kek: Any, payload: Any, code: int, offered: set[int]) -> CandidateResult:
    name = mechanism_name(code)
    if code not in offered:
        return CandidateResult(code, name, "not offered")
    try:
        output = kek.wrap_key(payload, mechanism=Mechanism(code))
    except p11x.PKCS11Error as exc:
        return CandidateResult(code, name, f"error: {type(exc).__name__}")
    return CandidateResult(code, name, classify(TEST_KEK, TEST_PAYLOAD, output))


def _choose(results: tuple[CandidateResult, ...]) -> CandidateResult | None:
    for acceptable in (CONFORMANT, ZERO_PAD):
        for result in results:
            if result.outcome == acceptable:
                return result
    return None


def _oaep_decrypt(private_key: rsa.RSAPrivateKey, block: bytes) -> bytes:
    sha1 = hashes.SHA1()
    return private_key.decrypt(
        block, asym_padding.OAEP(mgf=asym_padding.MGF1(sha1), algorithm=sha1, label=None)
    )


def _oaep_ok(rsa_pub: Any, aes: Any, test_rsa: rsa.RSAPrivateKey) -> bool:
    try:
        block = rsa_pub.wrap_key(aes, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=OAEP_SHA1)
        return _oaep_decrypt(test_rsa, block) == TEST_AES_256
    except (p11x.PKCS11Error, ValueError):
        return False


def _native_ok(rsa_pub: Any, payload: Any, test_rsa: rsa.RSAPrivateKey) -> bool:
    """Native CKM_RSA_AES_KEY_WRAP: untested on SoftHSM2 2.6 (it lacks the mechanism)."""
    param = RsaAesWrapParam()
    try:
        blob = rsa_pub.wrap_key(
            payload, mechanism=as_mechanism(CKM_RSA_AES_KEY_WRAP), mechanism_param=param.raw
        )
        split = test_rsa.key_size // 8
        aes_key = _oaep_decrypt(test_rsa, blob[:split])
        return keywrap.aes_key_unwrap_with_padding(aes_key, blob[split:]) == TEST_PAYLOAD
    except (p11x.PKCS11Error, ValueError, keywrap.InvalidUnwrap):
        return False
