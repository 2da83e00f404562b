"""cli.localvault_commands: `ceremony localvault serve|info`, the rehearsal vault from a shell.

Parses arguments, starts or describes the vault, prints. The vault lives in ceremony.localvault.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "localvault",
        help="run the local rehearsal Key Vault / Managed HSM",
        description="A local HTTPS Key Vault the Azure SDK talks to, for rehearsals and tests.",
    )
    commands = group.add_subparsers(dest="localvault_command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="serve a local vault until interrupted",
        description="Serve on 127.0.0.1; the first line on stdout is the vault URL once ready.",
    )
    serve.add_argument("--state", type=Path, required=True, help="state directory (created 0700)")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: last one, or free)")
    serve.add_argument(
        "--managed-hsm", action="store_true", help="behave as Managed HSM (oct-HSM allowed)"
    )
    serve.add_argument(
        "--strict",
        action="store_true",
        help="no rehearsal allowance: refuse every package Azure refuses, a zero-padded key "
        "(Debian's SoftHSM2 2.6) included",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault, OPERATION:KIND[:TIMES], KIND one of 503, 429, drop-after-commit "
        "(repeatable)",
    )
    serve.set_defaults(handler=_serve)

    info = commands.add_parser(
        "info",
        help="show how to reach the vault of a state directory",
        description="Print URL (if serving), CA bundle and token file of a local vault as JSON.",
    )
    info.add_argument("--state", type=Path, required=True, help="state directory")
    info.set_defaults(handler=_info)


def _serve(args: argparse.Namespace) -> int:
    from ceremony.errors import UsageError
    from ceremony.localvault.faults import Fault
    from ceremony.localvault.server import LocalVault

    if not 0 <= args.port <= 65535:
        raise UsageError(f"Port {args.port} is out of range.", "Use 1-65535, or 0 for any port.")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="localvault: %(levelname)s %(message)s"
    )
    faults = [Fault.parse(spec) for spec in args.fault]
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with LocalVault(
        args.state, managed_hsm=args.managed_hsm, port=args.port, faults=faults, strict=args.strict
    ) as vault:
        print(vault.url, flush=True)
        flavour = "Managed HSM" if args.managed_hsm else "Key Vault Premium"
        mode = (
            "strict (refuses all Azure refuses)"
            if args.strict
            else "rehearsal (accepts SoftHSM2 2.6's zero-padded keys with a warning)"
        )
        logging.getLogger("ceremony.localvault").info(
            "%s serving at %s, %s; CA %s; token file %s; faults: %s",
            flavour,
            vault.url,
            mode,
            vault.ca_path,
            vault.state_dir / "token",
            ", ".join(map(str, faults)) or "none",
        )
        while not stop.wait(0.5):
            pass
    logging.getLogger("ceremony.localvault").info("stopped cleanly")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ceremony.errors import UsageError, VaultError
    from ceremony.localvault.access import LocalVaultAccess

    access = LocalVaultAccess(args.state)
    if not access.ca_path.exists():
        raise UsageError(
            f"{access.state_dir} holds no local vault.",
            f"Start one with: ceremony localvault serve --state {access.state_dir}",
        )
    try:
        url: str | None = access.url
    except VaultError:
        url = None
    facts = {
        "url": url,
        "serving": url is not None,
        "mode": access.mode if url is not None else None,
        "ca": str(access.ca_path),
        "token_file": str(access.state_dir / "token"),
        "client_kwargs": access.client_kwargs(),
    }
    print(json.dumps(facts, indent=2))
    return 0
