"""ceremony.hsm.selftest and mechanisms: the classifier on published vectors, the raw parameters."""

from __future__ import annotations

import ctypes

import pytest
from cryptography.hazmat.primitives import keywrap
from pkcs11 import MGF, Attribute, KeyType, Mechanism
from pkcs11 import exceptions as p11x

from ceremony.errors import HsmError
from ceremony.hsm import WrapSelfTest, open_session, require_conformant
from ceremony.hsm.mechanisms import CKM_RSA_AES_KEY_WRAP, RsaAesWrapParam, as_mechanism
from ceremony.hsm.selftest import (
    CONFORMANT,
    FAILED,
    PASSED,
    PKCS7_RFC3394,
    TEST_KEK,
    TEST_PAYLOAD,
    UNKNOWN,
    ZERO_PAD,
    classify,
)

# RFC 5649 section 6, second example: 20-byte key under a 192-bit KEK.
RFC5649_OUTPUT = bytes.fromhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")


def test_self_test_values_are_the_rfc_5649_example():
    assert classify(TEST_KEK, TEST_PAYLOAD, RFC5649_OUTPUT) == CONFORMANT


def test_zero_padding_is_named():
    padded = keywrap.aes_key_wrap_with_padding(TEST_KEK, TEST_PAYLOAD + bytes(4))
    assert classify(TEST_KEK, TEST_PAYLOAD, padded) == ZERO_PAD


def test_pkcs7_then_rfc3394_is_named():
    padded = TEST_PAYLOAD + bytes([4]) * 4
    assert classify(TEST_KEK, TEST_PAYLOAD, keywrap.aes_key_wrap(TEST_KEK, padded)) == PKCS7_RFC3394


def test_anything_else_is_unknown():
    assert classify(TEST_KEK, TEST_PAYLOAD, bytes(32)) == UNKNOWN


def test_rsa_aes_key_wrap_params_layout():
    param = RsaAesWrapParam()
    size = ctypes.sizeof(ctypes.c_ulong)
    assert len(param.raw) == 2 * size
    assert int.from_bytes(param.raw[:size], "little") == 256
    address = int.from_bytes(param.raw[size:], "little")
    oaep = (ctypes.c_ulong * 5).from_address(address)
    assert list(oaep)[:3] == [Mechanism.SHA_1, MGF.SHA1, 1]  # SHA-1, MGF1-SHA-1, CKZ_DATA_SPECIFIED
    assert oaep[4] == 0  # empty label


def test_raw_mechanism_number_reaches_the_token(hsm_token):
    # python-pkcs11 has no CKM_RSA_AES_KEY_WRAP member; the number must still reach C_WrapKey,
    # where SoftHSM2 2.6 (which lacks it) answers CKR_MECHANISM_INVALID.
    mechanism = as_mechanism(CKM_RSA_AES_KEY_WRAP)
    assert isinstance(mechanism, Mechanism) and int(mechanism) == 0x1054
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        raw = session.raw
        target = raw.generate_key(KeyType.AES, 256, template={Attribute.EXTRACTABLE: True})
        wrapper = raw.generate_key(KeyType.AES, 256)
        param = RsaAesWrapParam()
        with pytest.raises(p11x.MechanismInvalid):
            wrapper.wrap_key(target, mechanism=mechanism, mechanism_param=param.raw)


# -- choosing a path: every branch, on recorded verdicts ----------------------------------------


def verdict(native: str, deviation: str | None) -> WrapSelfTest:
    """A self-test record as run_self_test makes it on 'auto' (a PAD two-step path)."""
    path = "native" if native == PASSED else "two-step"
    return WrapSelfTest(
        "CKM_AES_KEY_WRAP_PAD", 0x210A, native == PASSED or deviation is None, deviation, True,
        native == PASSED, native=native, path=path, reason="auto: …",
    )  # fmt: skip


def test_native_is_refused_where_it_failed_its_self_test():
    with pytest.raises(HsmError) as refusal:
        verdict(FAILED, None).choosing("native", "--wrap")
    assert refusal.value.message == (
        "Wrap path 'native' (chosen by --wrap) needs the native CKM_RSA_AES_KEY_WRAP, but on "
        "this token it failed its self-test."
    )


def test_two_step_chosen_where_native_passes_carries_the_two_step_verdict():
    """Native passing does not hide a deviating two-step path once that path is chosen: the
    deviation is allowed only where rehearsal allowances are on."""
    chosen = verdict(PASSED, ZERO_PAD).choosing("two-step", "the plan's [hsm] wrap")
    assert (chosen.path, chosen.chosen, chosen.conformant) == ("two-step", "two-step", False)
    assert chosen.reason == "chosen by the plan's [hsm] wrap"
    with pytest.raises(HsmError, match="zero-pad-before-rfc5649") as refusal:
        require_conformant(chosen, False)
    assert refusal.value.remedy.startswith("Choose wrap 'native' or 'auto'")
    assert require_conformant(chosen, True).startswith("REHEARSAL ONLY")
    record = chosen.to_dict()
    assert record["native"] == "passed" and record["two_step"]["conformant"] is False
    assert "path two-step (chosen by the plan's [hsm] wrap)" in record["verdict"]


def test_auto_keeps_the_self_tests_pick_and_an_unknown_path_is_refused():
    auto = verdict(PASSED, ZERO_PAD)
    assert auto.choosing("auto", "--wrap") == auto
    native = auto.choosing("native", "--wrap")
    assert (native.path, native.conformant, native.reason) == ("native", True, "chosen by --wrap")
    with pytest.raises(HsmError, match="'fast' is unknown"):
        auto.choosing("fast", "--wrap")


def test_the_report_shows_each_paths_verdict_and_the_choice():
    from ceremony.report import self_test_rows

    chosen = verdict(PASSED, None).choosing("two-step", "the plan's [hsm] wrap")
    rows = dict(self_test_rows(chosen.to_dict()))
    assert rows["Result"] == "conformant"
    assert rows["Path chosen"] == "two-step (chosen by the plan's [hsm] wrap)"
    assert rows["Native CKM_RSA_AES_KEY_WRAP"] == "passed"
    assert rows["Two-step (RFC 5649 + RSA-OAEP SHA-1)"] == (
        "CKM_AES_KEY_WRAP_PAD + CKM_RSA_PKCS_OAEP SHA-1, conformant"
    )
