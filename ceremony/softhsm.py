"""softhsm: throwaway SoftHSM2 directories and tokens for rehearsals, training and tests.

Owns provisioning only (directory, config, token initialisation); never holds a real ceremony key.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

from ceremony.errors import HsmError, UsageError

# Where distributions put the module: Debian/Ubuntu (multiarch and legacy), Fedora, Homebrew.
_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
_DEFAULT_SO_PIN = "so-pin-rehearsal"  # a throwaway token's SO PIN protects nothing
_CKF_TOKEN_INITIALIZED = 0x400


def find_module() -> str:
    """Path of libsofthsm2.so: $SOFTHSM2_MODULE, the active conda env, then distribution paths."""
    candidates = [os.environ.get("SOFTHSM2_MODULE", "")]
    for prefix in (os.environ.get("CONDA_PREFIX"), sys.prefix):
        if prefix:
            candidates.append(str(Path(prefix, "lib", "softhsm", "libsofthsm2.so")))
    candidates.extend(_MODULE_CANDIDATES)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise HsmError(
        "SoftHSM2 (libsofthsm2.so) is not installed in any known location.",
        "Install it (apt-get install softhsm2, or conda install -c conda-forge softhsm), "
        "or set SOFTHSM2_MODULE to its path.",
    )


class SoftHsm:
    """A private SoftHSM2 directory (mode 0700) with its own softhsm2.conf and token store.

    SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, so one process works with one directory.
    """

    def __init__(self, root: Path, module_path: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.module_path = module_path or find_module()
        self.conf_path = self.root / "softhsm2.conf"
        self.tokens_dir = self.root / "tokens"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.tokens_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.conf_path.exists():
            self.conf_path.write_text(
                f"directories.tokendir = {self.tokens_dir}\n"
                "objectstore.backend = file\n"
                "log.level = ERROR\n"
                "slots.removable = false\n"
                "slots.mechanisms = ALL\n"
                "library.reset_on_fork = false\n"
            )

    def environ(self) -> dict[str, str]:
        """What a child process needs in its environment to see these tokens."""
        return {"SOFTHSM2_CONF": str(self.conf_path)}

    def activate(self) -> None:
        """Point this process at this directory; must happen before the module is first loaded."""
        current = os.environ.get("SOFTHSM2_CONF")
        if current != str(self.conf_path) and _module_loaded(self.module_path):
            raise HsmError(
                "SoftHSM2 is already loaded in this process with another token directory.",
                "Use one SoftHSM directory per process, or start a new process.",
            )
        os.environ.update(self.environ())

    def create_token(self, label: str, pin: str, so_pin: str | None = None) -> None:
        """Initialise a new token, visible at once to this process and to any started later.

        When this process has the module loaded already, the token is initialised through that
        very instance (C_InitToken on its free slot), so it appears without C_Finalize and open
        sessions survive. Otherwise a child process does it, the PINs travelling on its stdin.
        """
        _check_token_args(label, pin)
        so_pin = so_pin or _DEFAULT_SO_PIN
        if _module_loaded(self.module_path):
            if os.environ.get("SOFTHSM2_CONF") != str(self.conf_path):
                raise HsmError(
                    f"Cannot create token {label!r}: this process uses another SoftHSM directory.",
                    "Call activate() on this SoftHsm before the module is first loaded.",
                )
            init_token(self.module_path, label, pin, so_pin)
            return
        env = {**os.environ, **self.environ()}
        request = json.dumps({"module": self.module_path, "label": label, "pin": pin, "so": so_pin})
        done = subprocess.run(
            [sys.executable, "-m", "ceremony.softhsm"],
            input=request,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise HsmError(
                f"Could not create SoftHSM token {label!r}: {done.stderr.strip()}",
                "Check that SoftHSM2 is installed and the directory is writable.",
            )


def _check_token_args(label: str, pin: str) -> None:
    if not label or len(label.encode()) > 32:
        raise UsageError(f"Token label {label!r} must be 1 to 32 bytes.", "Choose a shorter label.")
    if not 4 <= len(pin) <= 255:
        raise UsageError("A SoftHSM PIN must be 4 to 255 characters.", "Choose another PIN.")


def _module_loaded(module_path: str) -> bool:
    import pkcs11

    loaded = pkcs11._loaded.get(module_path)
    return bool(loaded is not None and loaded.initialized)


def init_token(module_path: str, label: str, pin: str, so_pin: str) -> None:
    """C_InitToken on the module's free slot, then set the user PIN as the security officer."""
    import pkcs11

    lib = pkcs11.lib(module_path)
    if any(token.label == label for token in lib.get_tokens()):
        raise HsmError(f"A token labelled {label!r} exists already.", "Choose another label.")
    free = [
        slot
        for slot in lib.get_slots(token_present=True)
        if not slot.get_token().flags & _CKF_TOKEN_INITIALIZED
    ]
    if not free:
        raise HsmError("SoftHSM offers no free slot for a new token.", "Restart the process.")
    # python-pkcs11 has no C_InitToken; the same shared object opened again is the same
    # instance (dlopen returns the loaded handle), already initialised.
    module = ctypes.CDLL(module_path)
    module.C_InitToken.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    module.C_InitToken.restype = ctypes.c_ulong
    so = so_pin.encode()
    rv = module.C_InitToken(free[0].slot_id, so, len(so), label.encode().ljust(32, b" "))
    if rv != 0:
        raise HsmError(f"C_InitToken failed for {label!r} (CKR 0x{rv:x}).", "Check the SO PIN.")
    token = lib.get_token(token_label=label)
    with token.open(rw=True, so_pin=so_pin) as session:
        session.init_pin(pin)


def _child_main() -> int:
    """Entry point of the child that creates a token when this process has no module loaded."""
    request = json.loads(sys.stdin.read())
    try:
        init_token(request["module"], request["label"], request["pin"], request["so"])
    except Exception as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
