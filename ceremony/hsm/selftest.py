"""hsm.selftest: the known-answer test that decides which mechanism really performs RFC 5649.

Owns the decision and its record for the evidence; uses only throwaway session objects with
published test values, never a ceremony key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
from ceremony.wrap_paths import AUTO, NATIVE, TWO_STEP, WRAP_CHOICES

# Published-style test values: nothing here is secret. The payload is 20 bytes, not a multiple
# of 8, so padding behaviour shows.
TEST_KEK = bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
TEST_PAYLOAD = bytes.fromhex("c37b7e6492584340bed12207808941155068f738")
TEST_AES_256 = bytes(range(32))

CONFORMANT = "rfc5649"
ZERO_PAD = "zero-pad-before-rfc5649"
PKCS7_RFC3394 = "pkcs7-pad-then-rfc3394"
UNKNOWN = "unknown-output"
OAEP_MISMATCH = "oaep-sha1-mismatch"

# The native mechanism's verdict.
PASSED, FAILED, NOT_OFFERED = "passed", "failed", "not offered"
_NATIVE_MISSING = {NOT_OFFERED: "is not offered", FAILED: "failed its self-test"}

DEVIATIONS = {
    ZERO_PAD: "it zero-pads the key to a multiple of 8 bytes before RFC 5649 wrapping, so the "
    "unwrapped key carries up to 7 extra zero bytes (SoftHSM2 2.6.x; fixed in 2.7.0)",
    PKCS7_RFC3394: "it applies PKCS#7 padding then RFC 3394, which Azure cannot unwrap",
    UNKNOWN: "its output matches no known padding scheme",
    OAEP_MISMATCH: "its RSA-OAEP SHA-1 output did not decrypt",
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
    """The self-test's verdict on both wrap paths, and which one wraps the target keys.

    The two-step path is `mechanism` (RFC 5649) + CKM_RSA_PKCS_OAEP: `deviation` names how it
    departs from the spec (None: conformant). `native` is the native CKM_RSA_AES_KEY_WRAP's
    verdict. `path` is the one chosen, `chosen` what was asked for and `reason` why this path;
    `conformant` is the chosen path's verdict.
    """

    mechanism: str | None
    mechanism_code: int | None
    conformant: bool
    deviation: str | None
    oaep_sha1: bool
    native_rsa_aes: bool
    candidates: tuple[CandidateResult, ...] = field(default=())
    native: str = NOT_OFFERED
    path: str | None = None
    chosen: str = AUTO
    reason: str = ""

    @property
    def two_step_conformant(self) -> bool:
        """The two-step path performs RFC 5649 and RSA-OAEP SHA-1 exactly as the spec says."""
        return self.mechanism is not None and self.deviation is None

    def two_step_verdict(self) -> str:
        """The two-step path in words, whichever path was chosen."""
        if self.mechanism is None:
            return "no mechanism performs RFC 5649"
        verdict = "conformant" if self.two_step_conformant else f"NOT conformant ({self.deviation})"
        return f"{self.mechanism} + CKM_RSA_PKCS_OAEP SHA-1, {verdict}"

    def choosing(self, wanted: str, source: str) -> WrapSelfTest:
        """This verdict with the path `wanted` ('auto', 'native', 'two-step') chosen by `source`
        (the plan's [hsm] wrap, --wrap); refuses a path the token cannot take."""
        if wanted not in WRAP_CHOICES:
            raise HsmError(
                f"The wrap path {wanted!r} is unknown.", f"Use one of {', '.join(WRAP_CHOICES)}."
            )
        if wanted == AUTO:
            return self
        chosen_by = f"chosen by {source}"
        if wanted == NATIVE and not self.native_rsa_aes:
            raise HsmError(
                f"Wrap path 'native' ({chosen_by}) needs the native CKM_RSA_AES_KEY_WRAP, but on "
                f"this token it {_NATIVE_MISSING[self.native]}.",
                "Use wrap 'two-step' or 'auto', or an HSM whose native mechanism passes "
                "(SoftHSM2 2.7.0 or later).",
            )
        if wanted == TWO_STEP and self.mechanism is None:
            raise HsmError(
                f"Wrap path 'two-step' ({chosen_by}) needs a mechanism that performs RFC 5649 AES "
                "key wrap with padding, and this token has none.",
                "Use wrap 'native' or 'auto', or an HSM that offers CKM_AES_KEY_WRAP_KWP/PAD.",
            )
        conformant = True if wanted == NATIVE else self.two_step_conformant
        return replace(self, path=wanted, chosen=wanted, conformant=conformant, reason=chosen_by)

    def summary(self) -> str:
        """One line for the operator and the transcript: both paths' verdicts and the choice."""
        if self.path is None:
            return "wrap self-test: no mechanism performs RFC 5649 on this token"
        if self.path == NATIVE:
            how = "native CKM_RSA_AES_KEY_WRAP"
        else:
            how = f"{self.mechanism} + CKM_RSA_PKCS_OAEP"
        verdict = "conformant" if self.conformant else f"NOT conformant ({self.deviation})"
        return (
            f"wrap self-test: {how}, {verdict}; native CKM_RSA_AES_KEY_WRAP: {self.native}; "
            f"two-step: {self.two_step_verdict()}; path {self.path} ({self.reason})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for the evidence."""
        record = asdict(self)
        record["mechanism_code"] = None if self.mechanism_code is None else hex(self.mechanism_code)
        record["candidates"] = [{**asdict(c), "code": hex(c.code)} for c in self.candidates]
        record["deviation_description"] = DEVIATIONS.get(self.deviation or "")
        record["two_step"] = {
            "mechanism": self.mechanism,
            "conformant": self.two_step_conformant,
            "deviation": self.deviation,
            "oaep_sha1": self.oaep_sha1,
            "verdict": self.two_step_verdict(),
        }
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
    """Test both wrap paths against published values and a software RSA key made for this test
    only, and pick one as 'auto' does: native CKM_RSA_AES_KEY_WRAP where it passes, else the two
    steps with the first candidate that performs RFC 5649 (a known deviation if none does)."""
    created: list[Any] = []
    try:
        with hsm_step("Importing the self-test keys"):
            kek = _session_secret(session, KeyType.AES, TEST_KEK, wrap=True)
            created.append(kek)
            payload = _session_secret(session, KeyType.GENERIC_SECRET, TEST_PAYLOAD)
            created.append(payload)
        results = tuple(_try_candidate(kek, payload, code, offered) for code in _CANDIDATES)
        chosen = _choose(results)
        if chosen is None and CKM_RSA_AES_KEY_WRAP not in offered:
            return WrapSelfTest(None, None, False, None, False, False, results)
        test_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with hsm_step("Importing the self-test RSA public key"):
            numbers = test_rsa.public_key().public_numbers()
            rsa_pub = import_rsa_public(session, numbers.n, numbers.e)
            created.append(rsa_pub)
            aes = _session_secret(session, KeyType.AES, TEST_AES_256)
            created.append(aes)
        oaep_ok = _oaep_ok(rsa_pub, aes, test_rsa)
        native = NOT_OFFERED
        if CKM_RSA_AES_KEY_WRAP in offered:
            native = PASSED if _native_ok(rsa_pub, payload, test_rsa) else FAILED
    finally:
        for obj in created:
            obj.destroy()
    deviation = None
    if chosen is not None and chosen.outcome != CONFORMANT:
        deviation = chosen.outcome
    elif chosen is not None and not oaep_ok:
        deviation = OAEP_MISMATCH
    two_step = chosen is not None and deviation is None
    if native == PASSED:
        path, conformant, reason = NATIVE, True, "auto: the native mechanism passed its self-test"
    elif chosen is not None:
        path, conformant = TWO_STEP, two_step
        reason = f"auto: the native mechanism {_NATIVE_MISSING[native]}"
    else:
        path, conformant, reason = None, False, "auto: neither path works on this token"
    return WrapSelfTest(
        chosen.name if chosen else None,
        chosen.code if chosen else None,
        conformant,
        deviation,
        oaep_ok,
        native == PASSED,
        results,
        native=native,
        path=path,
        reason=reason,
    )


def require_conformant(result: WrapSelfTest, rehearsal: bool) -> str | None:
    """Refuse a non-conformant token, except in a rehearsal, which gets a warning to record."""
    if result.path is None:
        raise HsmError(
            "No mechanism on this token performs RFC 5649 AES key wrap with padding.",
            "Use an HSM that offers CKM_AES_KEY_WRAP_KWP/PAD or CKM_RSA_AES_KEY_WRAP.",
        )
    if result.conformant:
        return None
    what = DEVIATIONS.get(result.deviation or "", "its output matches no known scheme")
    message = f"The token's {result.mechanism} is not conformant ({result.deviation}): {what}."
    if not rehearsal and result.native_rsa_aes:
        raise HsmError(
            message, "Choose wrap 'native' or 'auto': this token's native mechanism passed."
        )
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
