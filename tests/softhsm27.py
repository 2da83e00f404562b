"""SoftHSM2 2.7 for the tests that need a conformant token: where it is, or why they skip.

.ci/run builds it (the shared build script) and hands its module over in SOFTHSM27_MODULE; a
developer's earlier build in the default cache folder is found too. Elsewhere the tests skip and
say why in the summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_BUILD = Path.home() / ".cache" / "softhsm-2.7.0" / "lib" / "softhsm" / "libsofthsm2.so"


def module_path() -> str | None:
    """The SoftHSM2 2.7 PKCS#11 module, when one was built."""
    configured = os.environ.get("SOFTHSM27_MODULE")
    if configured:
        return configured if Path(configured).is_file() else None
    return str(DEFAULT_BUILD) if DEFAULT_BUILD.is_file() else None


requires_softhsm27 = pytest.mark.skipif(
    module_path() is None,
    reason="SoftHSM2 2.7 is not built here: build it with the shared softhsm-2.7/build.sh and "
    "set SOFTHSM27_MODULE to the module it prints (.ci/run does)",
)


def token27(directory: Path, label: str, pin: str, *, without: str = "") -> dict[str, str]:
    """A SoftHSM2 2.7 token in a directory of its own, made by a child process (this one may hold
    Debian's module); `without` names mechanisms the token must not offer (SoftHSM's
    slots.mechanisms, e.g. "CKM_RSA_AES_KEY_WRAP"). Returns the environment a child needs to use
    it: its directory and the user PIN."""
    from ceremony.softhsm import SoftHsm

    module = module_path()
    assert module is not None, "only for tests marked requires_softhsm27"
    softhsm = SoftHsm(directory, module)
    if without:
        conf = softhsm.conf_path.read_text()
        softhsm.conf_path.write_text(
            conf.replace("slots.mechanisms = ALL", f"slots.mechanisms = -{without}")
        )
    softhsm.create_token(label, pin)
    return {**softhsm.environ(), "CEREMONY_PIN": pin}
