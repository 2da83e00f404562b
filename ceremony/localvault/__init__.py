"""localvault: a rehearsal Azure Key Vault / Managed HSM on 127.0.0.1 that the Azure SDK talks to.

Owns the server side of the keys REST API, including real BYOK unwrapping. It shares no code with
ceremony.hsm or ceremony.byok; `LocalVault` is loaded lazily so `access` stays light to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ceremony.localvault.access import LocalVaultAccess
    from ceremony.localvault.faults import Fault
    from ceremony.localvault.server import LocalVault

__all__ = ["Fault", "LocalVault", "LocalVaultAccess"]

_HOMES = {
    "LocalVault": "ceremony.localvault.server",
    "LocalVaultAccess": "ceremony.localvault.access",
    "Fault": "ceremony.localvault.faults",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'ceremony.localvault' has no attribute {name!r}")
