"""hsm.module: loading a PKCS#11 module, finding a token, describing both, naming failures.

Owns the translation of PKCS#11 failures into HsmError; never logs in and never touches keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import exceptions as p11x

from ceremony.errors import HsmError
from ceremony.hsm.mechanisms import mechanism_name

# Sessions this process holds open per module: a module may be re-initialised only when none are.
OPEN_SESSIONS: dict[str, int] = {}

_REMEDIES: dict[type[Exception], str] = {
    p11x.PinIncorrect: "Check the PIN; tokens lock after a few wrong attempts.",
    p11x.PinLocked: "The user PIN is locked; the security officer must reset it.",
    p11x.PinLenRange: "The PIN has the wrong length for this token; check the PIN.",
    p11x.MechanismInvalid: "This token does not offer the mechanism; see `ceremony hsm info`.",
    p11x.AttributeSensitive: "The token protects this value, as it should; nothing to do.",
    p11x.TokenNotPresent: "Insert or connect the token, then run again.",
    p11x.DeviceRemoved: "Reconnect the token, then run again.",
    p11x.UserNotLoggedIn: "Log in to the token with the user PIN first.",
}


@contextmanager
def hsm_step(what: str) -> Iterator[None]:
    """Turn a PKCS#11 failure inside the block into one HsmError naming the step and cause."""
    try:
        yield
    except p11x.PKCS11Error as exc:
        cause = type(exc).__name__
        detail = f": {exc}" if str(exc) else ""
        remedy = _REMEDIES.get(type(exc), "See the HSM's documentation for this return code.")
        raise HsmError(f"{what} failed ({cause}{detail}).", remedy) from exc


def load_module(module_path: str) -> Any:
    """The initialised python-pkcs11 library object for a module path, or a clear HsmError."""
    if not Path(module_path).is_file():
        raise HsmError(
            f"PKCS#11 module {module_path!r} does not exist.",
            "Give the full path of the HSM vendor's PKCS#11 library (.so/.dylib/.dll).",
        )
    try:
        return pkcs11.lib(module_path)
    except p11x.PKCS11Error as exc:
        raise HsmError(
            f"{module_path!r} could not be loaded as a PKCS#11 module ({exc}).",
            "Give the path of the HSM vendor's PKCS#11 library, built for this machine.",
        ) from exc


def find_token(module_path: str, label: str | None = None, serial: str | None = None) -> Any:
    """The one token matching label and/or serial; refuses with the tokens present when none does.

    A token created after the module was initialised is invisible until C_Initialize runs again,
    which is done once, only while this process holds no session on the module.
    """
    if label is None and serial is None:
        raise HsmError("No token was named.", "Give the token label (or its serial number).")
    lib = load_module(module_path)
    matches = _matching(lib, label, serial)
    if not matches and OPEN_SESSIONS.get(module_path, 0) == 0:
        with hsm_step("Re-initialising the PKCS#11 module"):
            lib.reinitialize()
        matches = _matching(lib, label, serial)
    wanted = " and ".join(
        part for part in (label and f"label {label!r}", serial and f"serial {serial!r}") if part
    )
    if not matches:
        present = ", ".join(f"{t.label!r} (serial {_serial(t)})" for t in _tokens(lib)) or "none"
        raise HsmError(
            f"No token with {wanted} in {module_path}; tokens present: {present}.",
            "Check the token label, or initialise the token first.",
        )
    if len(matches) > 1:
        raise HsmError(
            f"{len(matches)} tokens have {wanted}.", "Name the token by its serial number too."
        )
    return matches[0]


def _tokens(lib: Any) -> list[Any]:
    with hsm_step("Listing the tokens"):
        return [
            token for token in lib.get_tokens() if token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED
        ]


def _matching(lib: Any, label: str | None, serial: str | None) -> list[Any]:
    return [
        token
        for token in _tokens(lib)
        if (label is None or token.label == label) and (serial is None or _serial(token) == serial)
    ]


def _serial(token: Any) -> str:
    return token.serial.decode("ascii", "replace").strip()


def _version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


@dataclass(frozen=True)
class LibraryInfo:
    """The PKCS#11 module as it describes itself (C_GetInfo)."""

    path: str
    manufacturer: str
    description: str
    library_version: str
    cryptoki_version: str


@dataclass(frozen=True)
class TokenInfo:
    """A token as it describes itself (C_GetTokenInfo), plus its slot."""

    label: str
    manufacturer: str
    model: str
    serial: str
    firmware_version: str
    hardware_version: str
    slot_id: int
    slot_description: str


@dataclass(frozen=True)
class MechanismEntry:
    """One mechanism the token offers: its number and its CKM_ name (hex when unnamed)."""

    code: int
    name: str


@dataclass(frozen=True)
class HsmInfo:
    """What the evidence records about the HSM: library, token and mechanism list."""

    library: LibraryInfo
    token: TokenInfo | None
    mechanisms: tuple[MechanismEntry, ...]
    tokens: tuple[TokenInfo, ...] = ()  # every token described: the one token, or all of them

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; mechanism numbers as hex strings."""
        return {
            "library": asdict(self.library),
            "token": asdict(self.token) if self.token else None,
            "mechanisms": [{"name": m.name, "code": f"0x{m.code:x}"} for m in self.mechanisms],
            "tokens": [asdict(t) for t in self.tokens],
        }


def library_info(lib: Any) -> LibraryInfo:
    return LibraryInfo(
        path=lib.so,
        manufacturer=lib.manufacturer_id.strip(),
        description=lib.library_description.strip(),
        library_version=_version(lib.library_version),
        cryptoki_version=_version(lib.cryptoki_version),
    )


def token_info(token: Any) -> TokenInfo:
    return TokenInfo(
        label=token.label,
        manufacturer=token.manufacturer_id.strip(),
        model=token.model.strip(),
        serial=_serial(token),
        firmware_version=_version(token.firmware_version),
        hardware_version=_version(token.hardware_version),
        slot_id=int(token.slot.slot_id),
        slot_description=token.slot.slot_description.strip(),
    )


def mechanism_list(token: Any) -> tuple[MechanismEntry, ...]:
    with hsm_step("Listing the token's mechanisms"):
        codes = sorted(int(m) for m in token.slot.get_mechanisms())
    return tuple(MechanismEntry(code, mechanism_name(code)) for code in codes)


def describe_token(module_path: str, token: Any) -> HsmInfo:
    """Library, token and mechanisms; needs no login."""
    with hsm_step("Reading the token information"):
        described = token_info(token)
        return HsmInfo(
            library_info(load_module(module_path)), described, mechanism_list(token), (described,)
        )


def describe_module(module_path: str) -> HsmInfo:
    """The library and every initialised token in it, without logging in."""
    lib = load_module(module_path)
    with hsm_step("Reading the module information"):
        return HsmInfo(library_info(lib), None, (), tuple(token_info(t) for t in _tokens(lib)))
