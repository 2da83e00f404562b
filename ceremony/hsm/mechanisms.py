"""hsm.mechanisms: PKCS#11 mechanism numbers and parameters the wrap needs, and their names.

Owns the raw constants python-pkcs11 lacks; never talks to a token.
"""

from __future__ import annotations

import ctypes

from pkcs11 import MGF, Mechanism

CKM_RSA_AES_KEY_WRAP = 0x1054
CKM_AES_KEY_WRAP_PAD = 0x210A
CKM_AES_KEY_WRAP_KWP = 0x210B

# RSA-OAEP exactly as Azure's BYOK specification asks: SHA-1, MGF1-SHA-1, empty label.
OAEP_SHA1 = (Mechanism.SHA_1, MGF.SHA1, None)

_EXTRA_NAMES = {CKM_RSA_AES_KEY_WRAP: "CKM_RSA_AES_KEY_WRAP"}


def mechanism_name(code: int) -> str:
    """'CKM_…' for a known mechanism, '0x…' (hex) for one python-pkcs11 does not name."""
    if code in _EXTRA_NAMES:
        return _EXTRA_NAMES[code]
    try:
        return "CKM_" + Mechanism(code).name.lstrip("_")
    except ValueError:
        return f"0x{code:x}"


def as_mechanism(code: int) -> Mechanism:
    """A Mechanism for any number, so python-pkcs11 accepts codes its enum does not list."""
    try:
        return Mechanism(code)
    except ValueError:
        member = int.__new__(Mechanism, code)
        member._name_ = mechanism_name(code)
        member._value_ = code
        return member


class _OaepParams(ctypes.Structure):
    _fields_ = (
        ("hashAlg", ctypes.c_ulong),
        ("mgf", ctypes.c_ulong),
        ("source", ctypes.c_ulong),
        ("pSourceData", ctypes.c_void_p),
        ("ulSourceDataLen", ctypes.c_ulong),
    )


class _RsaAesKeyWrapParams(ctypes.Structure):
    _fields_ = (("ulAESKeyBits", ctypes.c_ulong), ("pOAEPParams", ctypes.POINTER(_OaepParams)))


class RsaAesWrapParam:
    """CK_RSA_AES_KEY_WRAP_PARAMS (AES-256, OAEP SHA-1) as raw bytes for python-pkcs11.

    The OAEP structure is referenced by pointer, so this object must outlive the C_WrapKey call.
    """

    def __init__(self) -> None:
        data_specified = 1  # CKZ_DATA_SPECIFIED, with no data: the empty label
        self._oaep = _OaepParams(int(Mechanism.SHA_1), int(MGF.SHA1), data_specified, None, 0)
        params = _RsaAesKeyWrapParams(256, ctypes.pointer(self._oaep))
        self.raw = bytes(params)
