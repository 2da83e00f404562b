"""airgap: which machine a phase belongs on, and the refusal to run an offline phase online.

Looks for signs that this machine can reach the vault (Azure credentials in the environment, an
Azure CLI login, the vault answering on the network). Never contacts the vault beyond one TCP probe.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from ceremony.errors import RefusedError
from ceremony.phases import OFFLINE, SIDES, Phase
from ceremony.plan import Plan

# Variables through which azure-identity (and the Azure CLI) find credentials.
CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
)
CLI_LOGIN_FILES = (".azure/msal_token_cache.json", ".azure/msal_token_cache.bin")
PROBE_SECONDS = 3.0
REHEARSAL_NOTE = (
    "Rehearsal: the online phases (01 kek, 04 upload) and the offline phases (02 generate, "
    "03 wrap) run on this one machine. In a real ceremony they run on two machines and the "
    "workspace is carried across the air gap."
)


def reachable(host: str, port: int = 443, timeout: float = PROBE_SECONDS) -> bool:
    """True when a TCP connection to host:port succeeds within `timeout` (name lookup included)."""
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def network_signs(plan: Plan, home: Path | None = None) -> list[str]:
    """Every reason to believe this machine has network access to the vault."""
    signs = [f"{name} is set" for name in CREDENTIAL_VARIABLES if os.environ.get(name)]
    home = home or Path.home()
    signs += [
        f"an Azure CLI login is stored in ~/{n}" for n in CLI_LOGIN_FILES if (home / n).exists()
    ]
    from urllib.parse import urlsplit

    parts = urlsplit(plan.vault.url)
    if reachable(parts.hostname or "", parts.port or 443):
        signs.append(f"the vault {parts.hostname} answers from this machine")
    return signs


def check_side(phase: Phase, plan: Plan, *, rehearsal: bool) -> str | None:
    """Refuse an offline phase on a machine with network access to the vault.

    Returns the note to show and record instead when this is a rehearsal (one machine)."""
    if phase.side != OFFLINE:
        return None
    if rehearsal:
        return REHEARSAL_NOTE
    signs = network_signs(plan)
    if signs:
        raise RefusedError(
            f"Phase {phase.title} belongs on {SIDES[OFFLINE]}, but this machine can reach the "
            f"vault: {'; '.join(signs)}.",
            "Carry the workspace to the air-gapped HSM machine and run the phase there (unset "
            "Azure credentials and disconnect the network).",
        )
    return None
