"""Run in a child process of its own (SoftHSM reads its directory once per process) against a
SoftHSM2 2.7 module: wrap-with-trusted as a ceremony sets it up, then every way code holding the
user PIN could try to export a ceremony key under a key of its own. Prints JSON for the test.

    python -m tests.probe_trusted_wrap MODULE DIRECTORY KEK_PEM
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag

from ceremony.errors import CeremonyError
from ceremony.hsm import load_kek, open_session
from ceremony.hsm.mechanisms import CKM_RSA_AES_KEY_WRAP, RsaAesWrapParam, as_mechanism
from ceremony.hsm.module import load_module
from ceremony.hsm.selftest import import_rsa_public
from ceremony.hsm.trusted import install_trusted_kek
from ceremony.keyspec import KeySpec
from ceremony.softhsm import SoftHsm

USER_PIN, SO_PIN, TOKEN = "user-1234", "so-5678", "trusted-wrap"
SPECS = {
    "t-rsa": KeySpec("RSA-HSM", 3072, None),
    "t-ec": KeySpec("EC-HSM", None, "P-384"),
    "t-aes": KeySpec("oct-HSM", 256, None),
}


def _refused(attempt) -> str:
    """The error an export attempt ends with; "EXPORTED" if the token let it through."""
    try:
        attempt()
    except Exception as exc:  # the token's refusal, whatever python-pkcs11 calls it
        return f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    return "EXPORTED"


def main(module: str, directory: str, kek_pem_path: str) -> None:
    softhsm = SoftHsm(Path(directory), module)
    softhsm.activate()
    load_module(module)
    softhsm.create_token(TOKEN, USER_PIN, so_pin=SO_PIN)
    kek_pem = Path(kek_pem_path).read_bytes()
    kek = load_kek(kek_pem)
    out: dict = {}
    try:
        install_trusted_kek(module, TOKEN, "wrong-so-pin", kek, "kek (trusted KEK)")
    except CeremonyError as exc:
        out["wrong_so_pin"] = exc.message
    first = install_trusted_kek(module, TOKEN, SO_PIN, kek, "kek (trusted KEK)")
    again = install_trusted_kek(module, TOKEN, SO_PIN, kek, "kek (trusted KEK)")
    out["installed"] = [first.installed_now, again.installed_now]
    with open_session(module, TOKEN, pin=USER_PIN) as session:
        test = session.self_test()
        out["native"] = test.native_rsa_aes
        raw = session.raw
        attacker_aes = raw.generate_key(
            KeyType.AES, 256, store=False, capabilities=MechanismFlag.WRAP,
            template={Attribute.EXTRACTABLE: True},
        )  # fmt: skip
        attacker_rsa = import_rsa_public(raw, kek.modulus, kek.exponent)  # the KEK, untrusted
        native, param = as_mechanism(CKM_RSA_AES_KEY_WRAP), RsaAesWrapParam()  # param stays alive
        for label, spec in SPECS.items():
            key = session.generate(spec, label, wrap_with_trusted=True)
            target = session._targets[label]
            out[label] = {
                "public_pem": key.public_key_pem,
                "wrap_with_trusted": key.attributes.get("CKA_WRAP_WITH_TRUSTED"),
                "blob": session.wrap_for_byok(label, kek_pem, test, trusted=True).hex(),
                "under_session_kek": _refused(
                    lambda t=target: attacker_rsa.wrap_key(
                        t, mechanism=native, mechanism_param=param.raw
                    )
                ),
                "under_attacker_aes": _refused(
                    lambda t=target: attacker_aes.wrap_key(t, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                ),
                "untrusted_path": _refused(
                    lambda lb=label: session.wrap_for_byok(lb, kek_pem, test, trusted=False)
                ),
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
