"""hsm.pin: where a PIN comes from: the CEREMONY_PIN environment variable or a hidden prompt.

Never takes a PIN from a command-line argument, and never prints, logs or stores one.
"""

from __future__ import annotations

import getpass
import os
import sys

from ceremony.errors import UsageError


def read_pin(env_var: str = "CEREMONY_PIN", prompt: str = "HSM user PIN (hidden): ") -> str:
    """The PIN from `env_var` if set, else typed at a hidden prompt on a terminal."""
    pin = os.environ.get(env_var)
    if pin:
        return pin
    if not sys.stdin.isatty():
        raise UsageError(
            f"No PIN: {env_var} is not set and there is no terminal to ask on.",
            f"Set {env_var} in the environment, or run the command in a terminal.",
        )
    pin = getpass.getpass(prompt)
    if not pin:
        raise UsageError("An empty PIN was entered.", "Run again and type the token's user PIN.")
    return pin
