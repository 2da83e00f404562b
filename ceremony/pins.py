"""pins: the environment variables that carry PINs — their names, and how to tell them apart.

Names only: never reads, prints or stores a value. Whatever carries a PIN is kept from child
processes that did not ask for it and is looked for in everything that is sealed.
"""

from __future__ import annotations

USER_PIN = (
    "CEREMONY_PIN"  # the ceremony token's user (the custodians); CEREMONY_PIN_<NAME>: signers
)
SO_PIN = "CEREMONY_SO_PIN"  # the ceremony token's security officer
_PREFIXES = (USER_PIN, SO_PIN)


def is_pin_variable(name: str) -> bool:
    """Whether an environment variable of this name carries a PIN."""
    return name.startswith(_PREFIXES)
