"""hsm: everything that touches PKCS#11, on any module by path (SoftHSM2 by default).

Never returns private or secret key bytes, and never takes a PIN from anywhere but the caller.
"""

from ceremony.hsm.kek import KekPublicKey, load_kek
from ceremony.hsm.keys import GeneratedKey
from ceremony.hsm.module import HsmInfo, LibraryInfo, MechanismEntry, TokenInfo, describe_module
from ceremony.hsm.pin import read_pin
from ceremony.hsm.selftest import WrapSelfTest, require_conformant
from ceremony.hsm.session import HsmSession, open_session

__all__ = [
    "GeneratedKey",
    "HsmInfo",
    "HsmSession",
    "KekPublicKey",
    "LibraryInfo",
    "MechanismEntry",
    "TokenInfo",
    "WrapSelfTest",
    "describe_module",
    "load_kek",
    "open_session",
    "read_pin",
    "require_conformant",
]
