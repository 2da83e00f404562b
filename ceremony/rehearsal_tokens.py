"""rehearsal_tokens: the rehearsal's tokens, each side's handled in a process of its own.

The two sides of the air gap share no HSM: the ceremony's token (offline side) and the people's
signing tokens (phase 05) live in separate SoftHSM2 directories, and SoftHSM2 reads its directory
once per process. So each side's tokens are made — or, with `--token`, an existing token is checked
— by a child process that gets its PINs on stdin and answers in JSON; the rehearsal itself never
loads a PKCS#11 module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ceremony import errors
from ceremony.errors import CeremonyError, HsmError
from ceremony.pins import is_pin_variable

MODULE = "ceremony.rehearsal_tokens"
SOFTHSM2_CONF = "SOFTHSM2_CONF"


@dataclass(frozen=True)
class CeremonyToken:
    """The ceremony HSM's token as the rehearsal found it."""

    label: str
    native_rsa_aes: bool  # wrap-with-trusted needs the native CKM_RSA_AES_KEY_WRAP
    description: str


def make_ceremony_token(
    module: str, conf: Path, label: str, pin: str, so_pin: str
) -> CeremonyToken:
    """A new throwaway token on a SoftHSM2 module (refused for any other module, whose free slot
    might be a real HSM's)."""
    request = {"task": "new", "module": module, "label": label, "pin": pin, "so_pin": so_pin}
    return CeremonyToken(**_in_child(request, conf))


def check_ceremony_token(module: str, conf: Path | None, label: str, pin: str) -> CeremonyToken:
    """An existing token (an HSM's test partition): reachable, logged in with `pin`, self-tested
    with session objects only; nothing on it is created or changed. `conf`: the SoftHSM2
    configuration the user gave, when the module is SoftHSM2."""
    request = {"task": "existing", "module": module, "label": label, "pin": pin}
    return CeremonyToken(**_in_child(request, conf))


def make_signing_tokens(module: str, conf: Path, pins: dict[str, str]) -> dict[str, list[str]]:
    """One throwaway token per person, named after them, each with an EC signing key; returns
    each person's signer reference and public key PEM."""
    request = {"task": "signers", "module": module, "pins": pins}
    return _in_child(request, conf)


def _in_child(request: dict[str, Any], conf: Path | None) -> Any:
    """Run one task in a child whose SoftHSM2 configuration is exactly `conf` (or none)."""
    from ceremony.kernel import SAFE_IMPORTS  # the child itself never needs Jupyter's machinery

    env = {k: v for k, v in os.environ.items() if not is_pin_variable(k) and k != SOFTHSM2_CONF}
    if conf is not None:
        env[SOFTHSM2_CONF] = str(conf)
    done = subprocess.run(
        [sys.executable, "-P", "-m", MODULE],
        input=json.dumps(request),
        env={**env, **SAFE_IMPORTS},
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise HsmError(
            f"The token set-up process failed: {done.stderr.strip()[-500:] or done.returncode}.",
            "Check the PKCS#11 module and its configuration.",
        ) from None
    if "error" in answer:
        kind = getattr(errors, answer["error"], CeremonyError)
        raise kind(answer["message"], answer["remedy"])
    return answer["result"]


def _new(request: dict[str, Any]) -> dict[str, Any]:
    from ceremony.hsm.module import load_module
    from ceremony.softhsm import init_token

    lib = load_module(request["module"])
    if "softhsm" not in lib.manufacturer_id.lower():
        raise HsmError(
            f"{request['module']} is not SoftHSM2 ({lib.manufacturer_id.strip()}), so the "
            "rehearsal will not make throwaway tokens on it.",
            "Give --token LABEL: an existing token (a test partition) on that HSM, with its PIN "
            "in CEREMONY_PIN.",
        )
    init_token(request["module"], request["label"], request["pin"], request["so_pin"])
    return _existing(request)


def _existing(request: dict[str, Any]) -> dict[str, Any]:
    from ceremony.hsm import open_session

    with open_session(request["module"], request["label"], pin=request["pin"]) as session:
        info = session.describe()
        test = session.self_test()
    token = info.token
    description = (
        f"{token.label} — {token.manufacturer} {token.model}, firmware {token.firmware_version}"
        if token
        else request["label"]
    )
    return {
        "label": request["label"],
        "native_rsa_aes": test.native_rsa_aes,
        "description": description,
    }


def _signers(request: dict[str, Any]) -> dict[str, list[str]]:
    from ceremony.hsm.module import load_module
    from ceremony.signers import create_token_signing_key
    from ceremony.softhsm import init_token

    load_module(request["module"])
    made = {}
    for name, pin in request["pins"].items():
        init_token(request["module"], name, pin, pin)
        made[name] = list(create_token_signing_key(request["module"], name, pin))
    return made


TASKS = {"new": _new, "existing": _existing, "signers": _signers}


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        answer: dict[str, Any] = {"result": TASKS[request["task"]](request)}
    except CeremonyError as exc:
        answer = {"error": type(exc).__name__, "message": exc.message, "remedy": exc.remedy}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
