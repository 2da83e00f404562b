"""Wrap-with-trusted on a conformant token (SoftHSM2 2.7, native CKM_RSA_AES_KEY_WRAP): a ceremony
key is wrapped under the KEK the security officer trusted, and under nothing else, even by code
holding the user PIN. Packages are opened with pyca/cryptography and the openssl CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization

from ceremony.errors import HsmError
from tests.fixtures_hsm import unwrap_with_cryptography, unwrap_with_openssl
from tests.softhsm27 import module_path, requires_softhsm27
from tests.workbook_support import ROOT, clean_env


@pytest.fixture(scope="module")
def probe(tmp_path_factory, software_kek) -> dict:
    directory = tmp_path_factory.mktemp("softhsm27")
    done = subprocess.run(
        [sys.executable, "-m", "tests.probe_trusted_wrap", module_path(), str(directory / "hsm"),
         str(software_kek.pem_path)],
        env=clean_env(), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@requires_softhsm27
def test_the_security_officer_installs_the_trusted_kek_once(probe):
    assert probe["native"] is True
    assert probe["installed"] == [True, False]  # a second install keeps the first object
    assert "security officer" in probe["wrong_so_pin"] and "PinIncorrect" in probe["wrong_so_pin"]


@requires_softhsm27
@pytest.mark.parametrize("label", ["t-rsa", "t-ec", "t-aes"])
def test_a_ceremony_key_is_wrapped_under_the_trusted_kek_and_opens_to_its_key(
    probe, software_kek, label, tmp_path
):
    result = probe[label]
    assert result["wrap_with_trusted"] is True
    blob = bytes.fromhex(result["blob"])
    plain = unwrap_with_cryptography(blob, software_kek)
    assert plain == unwrap_with_openssl(blob, software_kek, tmp_path)
    if label == "t-aes":
        assert len(plain) == 32  # RFC 5649's integrity check held: exactly an AES-256 key
        return
    private = serialization.load_der_private_key(plain, password=None)  # exact DER, no padding
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.decode() == result["public_pem"]


@requires_softhsm27
@pytest.mark.parametrize("label", ["t-rsa", "t-ec", "t-aes"])
@pytest.mark.parametrize("attempt", ["under_session_kek", "under_attacker_aes", "untrusted_path"])
def test_code_with_the_user_pin_cannot_wrap_a_ceremony_key_under_any_other_key(
    probe, label, attempt
):
    refusal = probe[label][attempt]
    assert refusal != "EXPORTED"
    assert "KeyNotWrappable" in refusal or "not wrappable" in refusal.lower(), refusal


def test_trusted_wrap_needs_the_native_mechanism(hsm_token, software_kek):
    """Debian's SoftHSM2 2.6 has no CKM_RSA_AES_KEY_WRAP: the trusted path refuses, naming why."""
    from ceremony.hsm import open_session
    from ceremony.keyspec import KeySpec

    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        test = session.self_test()
        if test.native_rsa_aes:
            pytest.skip("this SoftHSM2 offers the native mechanism")
        session.generate(KeySpec("oct-HSM", 256, None), "needs-native")
        with pytest.raises(HsmError, match="native CKM_RSA_AES_KEY_WRAP"):
            session.wrap_for_byok("needs-native", software_kek.public_pem, test, trusted=True)


@requires_softhsm27
def test_a_strict_rehearsal_on_softhsm27_wraps_only_under_the_trusted_kek(tmp_path):
    """The day's exact path, only Azure replaced: `ceremony rehearse --module <2.7> --strict`,
    two sides apart, through the notebooks on a conformant token — the security officer's step
    in phase 03, every key type CKA_WRAP_WITH_TRUSTED, the archive verified with no exception,
    the evidence saying the cloud was the local vault, no PIN anywhere."""
    import tarfile

    from ceremony.evidence.secrets import scan_tree
    from tests.fixtures_evidence import assert_no_secrets
    from tests.workbook_support import PINS, ceremony, events

    root = tmp_path / "r"
    done = ceremony(
        "rehearse", "--out", str(root), "--module", module_path(), "--strict",
        env=clean_env(**PINS),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Rehearsal complete and verified." in done.stdout
    started = [e for e in events(root / "workspace") if e["action"] == "phase-started"]
    assert {e["data"]["mode"] for e in started} == {"strict-rehearsal"} and len(started) == 7
    notes = [e["data"]["air_gap"] for e in events(root / "workspace") if e["action"] == "note"]
    assert any("local vault standing in for Azure was strict" in n for n in notes)
    with tarfile.open(root / "workspace" / "archive.tar") as tar:
        statement = json.loads(tar.extractfile("evidence/statement.json").read())
    predicate = statement.get("predicate", statement)
    assert predicate["exceptions"] == []  # no HSM exception, nothing else either
    assert predicate["stand_ins"]["cloud"] == "local vault"
    assert predicate["wrap_self_test"]["conformant"] is True
    report = (root / "workspace" / "evidence" / "report.html").read_text()
    assert "The cloud was the workbook's local vault" in report and "strict rehearsal" in report
    assert "wrap_with_trusted = false" not in (root / "plan.toml").read_text()
    workspace = root / "workspace"
    trusted = [e for e in events(workspace) if e["action"] == "kek-trusted"]
    assert len(trusted) == 1 and trusted[0]["phase"] == "03"
    for name in ("rehearsal-rsa", "rehearsal-ec", "rehearsal-aes"):
        record = json.loads((workspace / "keys" / f"{name}.json").read_text())
        assert record["attributes"]["CKA_WRAP_WITH_TRUSTED"] is True
    pins = list(PINS.values())
    assert_no_secrets(workspace / "archive.tar", pins)
    assert scan_tree(workspace, pins) == []
