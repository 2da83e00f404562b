"""cli: the `ceremony` command. Parses arguments, calls the library, prints; nothing else.

Each command group lives in its own module with a `register(subparsers)` function; a handler
returns an exit code. Library errors become one line on stderr and a non-zero exit, never a trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ceremony import __version__
from ceremony.errors import CeremonyError

# Command-group modules, in the order their commands appear in --help.
COMMAND_MODULES = (
    "ceremony.cli.hsm_commands",
    "ceremony.cli.vault_commands",
    "ceremony.cli.localvault_commands",
    "ceremony.cli.evidence_commands",
    "ceremony.cli.workbook_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ceremony",
        description="Witnessed BYOK key ceremonies: HSM key generation, wrapping, Azure import, "
        "signed evidence.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CeremonyError as exc:
        print(f"ceremony: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ceremony: interrupted; nothing further was done.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ceremony ... | head`): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
