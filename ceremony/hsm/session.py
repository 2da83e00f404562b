"""hsm.session: one logged-in, read-write session on one token, and what a ceremony does with it.

Owns the session's lifetime and the order of checks; never returns private or secret key bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from pkcs11.exceptions import PKCS11Error

from ceremony.errors import HsmError
from ceremony.hsm import keys, wrap
from ceremony.hsm.kek import KekPublicKey, load_kek
from ceremony.hsm.module import OPEN_SESSIONS, HsmInfo, describe_token, find_token, hsm_step
from ceremony.hsm.selftest import WrapSelfTest, run_self_test
from ceremony.hsm.trusted import find_trusted_kek
from ceremony.keyspec import KeySpec
from ceremony.wrap_paths import AUTO, NATIVE


class HsmSession:
    """A ceremony's view of a token. `raw` is the python-pkcs11 session, for tests and tools."""

    def __init__(self, module_path: str, token: Any, raw: Any) -> None:
        self.module_path = module_path
        self.token = token
        self.raw = raw
        self._info: HsmInfo | None = None
        self._keks: dict[bytes, Any] = {}
        self._targets: dict[str, Any] = {}  # keys generated in this session, by label

    def describe(self) -> HsmInfo:
        """Library, token (manufacturer, model, serial, firmware) and mechanisms."""
        if self._info is None:
            self._info = describe_token(self.module_path, self.token)
        return self._info

    def self_test(self, wrap: str = AUTO, chosen_by: str = "") -> WrapSelfTest:
        """Both wrap paths' verdicts on this token, and the path `wrap` ('auto', 'native' or
        'two-step', chosen by `chosen_by`); refuses a path the token cannot take."""
        offered = {m.code for m in self.describe().mechanisms}
        return run_self_test(self.raw, offered).choosing(wrap, chosen_by)

    def generate(
        self, spec: KeySpec, label: str, *, wrap_with_trusted: bool = False
    ) -> keys.GeneratedKey:
        """Generate a target key in the token; refuses a label already in use."""
        key, handle = keys.generate(self.raw, spec, label, wrap_with_trusted=wrap_with_trusted)
        self._targets[label] = handle
        return key

    def label_in_use(self, label: str) -> bool:
        """Whether any object on the token carries this label: checked before anything is made."""
        return bool(keys.find_objects(self.raw, label))

    def remove_half_made(self, label: str) -> int:
        """The public halves an interrupted generation of `label` left: destroyed, counted.
        Only for a label this ceremony found free before it started generating."""
        return keys.remove_half_made(self.raw, label)

    def find_key(self, label: str) -> keys.GeneratedKey | None:
        """The target key labelled `label`, or None: lets a rerun resume instead of duplicating."""
        return keys.find_key(self.raw, label)

    def wrap_for_byok(
        self, label: str, kek_public_key: bytes, self_test: WrapSelfTest, *, trusted: bool = False
    ) -> bytes:
        """The CKM_RSA_AES_KEY_WRAP ciphertext of key `label` under the KEK (SPKI PEM or DER).

        The path is the one `self_test` chose (see WrapSelfTest.choosing). `trusted`: wrap under
        the KEK's trusted token object (the security officer installed it), as a
        CKA_WRAP_WITH_TRUSTED key requires; that takes the native mechanism, since the two-step
        path's ephemeral AES key cannot be trusted without the security officer."""
        kek = load_kek(kek_public_key)
        target = self._targets.get(label) or keys.private_or_secret(self.raw, label)
        if trusted and self_test.path != NATIVE:
            raise HsmError(
                "A key that only a trusted key may wrap needs the token's native "
                f"CKM_RSA_AES_KEY_WRAP, but the wrap path is {self_test.path or 'none'} "
                f"({self_test.reason}).",
                "Use a token whose native mechanism passes and wrap 'auto' or 'native', or accept "
                "the risk in the plan ([hsm] wrap_with_trusted = false) before the keys are made.",
            )
        kek_object = find_trusted_kek(self.raw, kek) if trusted else self._kek_object(kek)
        return wrap.wrap_target(self.raw, kek_object, kek, target, label, self_test)

    def wrap_challenge(self, label: str, challenge: bytes) -> bytes:
        """AES key `label` wraps a challenge (RFC 3394) for the vault to unwrap: the AES proof."""
        return wrap.wrap_challenge(self.raw, label, challenge)

    def random_bytes(self, count: int) -> bytes:
        """Random bytes from the HSM, for the AES proof-of-possession challenges."""
        with hsm_step("Drawing random bytes from the HSM"):
            return bytes(self.raw.generate_random(count * 8))

    def _kek_object(self, kek: KekPublicKey) -> Any:
        if kek.spki_der not in self._keks:
            self._keks[kek.spki_der] = wrap.import_kek(self.raw, kek)
        return self._keks[kek.spki_der]


@contextmanager
def open_session(
    module_path: str,
    token_label: str | None = None,
    *,
    serial: str | None = None,
    pin: str | None,
) -> Iterator[HsmSession]:
    """A read-write session on the token, logged in as user with `pin` (None: not logged in).

    Session objects (KEK, ephemeral keys) vanish when the block ends; token keys stay.
    """
    token = find_token(module_path, token_label, serial)
    with hsm_step(f"Opening a session on token {token.label!r}"):
        raw = token.open(rw=True, user_pin=pin)
    OPEN_SESSIONS[module_path] = OPEN_SESSIONS.get(module_path, 0) + 1
    try:
        yield HsmSession(module_path, token, raw)
    finally:
        OPEN_SESSIONS[module_path] -= 1
        # Closing must not hide the error that ended the block; the module logs out anyway.
        with suppress(PKCS11Error):
            raw.close()
