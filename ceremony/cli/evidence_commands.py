"""cli.evidence_commands: `ceremony verify`, `ceremony seal` and `ceremony fingerprint`.

Parses arguments, calls ceremony.evidence / ceremony.fingerprint, prints; no logic of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from ceremony.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="verify an evidence archive or sealed workspace offline",
        description="Recompute every digest, the transcript chain, each signature and the quorum, "
        "and check every .byok and import record. Exit 0 verified, 1 not verified, 2 unusable "
        "input. Needs no network and no HSM.",
    )
    verify.add_argument("path", type=Path, help="archive.tar or a sealed workspace directory")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--signer-key",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="a signer's public key obtained apart from the evidence; when given, only "
        "signatures by these keys count (repeatable)",
    )
    verify.set_defaults(handler=_verify)

    seal = subparsers.add_parser(
        "seal",
        help="sign a finished workspace and write its evidence archive",
        description="Seal WORKSPACE: report, in-toto statement, one DSSE signature per signer, "
        "deterministic archive.tar. PINs come from CEREMONY_PIN_<NAME> or a hidden prompt.",
    )
    seal.add_argument("workspace", type=Path)
    seal.add_argument(
        "--people",
        type=Path,
        required=True,
        help='JSON file: {"people": [{"name", "role", "public_key_pem", "signer"}], '
        '"quorum": {"custodian": 2, "witness": 1}}',
    )
    seal.add_argument("--time", help="ceremony time, ISO 8601 UTC (default: now)")
    seal.set_defaults(handler=_seal)

    fingerprint = subparsers.add_parser(
        "fingerprint",
        help="show a file's or public key's SHA-256 as hex, PGP words and QR code",
    )
    fingerprint.add_argument("file", type=Path)
    fingerprint.add_argument(
        "--public-key",
        action="store_true",
        help="fingerprint the DER public key inside a PEM/DER public key file",
    )
    fingerprint.add_argument("--ascii", action="store_true", help="draw the QR code with '#'")
    fingerprint.set_defaults(handler=_fingerprint)


def _verify(args: argparse.Namespace) -> int:
    from ceremony.evidence.verify import verify_path

    keys = [_read(path) for path in args.signer_key]
    report = verify_path(args.path, trusted_keys=keys)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
        if report.archive_sha256:
            print(f"\narchive sha256: {report.archive_sha256}")
        if report.verified:
            print(f"VERIFIED: signed by {', '.join(report.signed_by)}.")
            for flag in report.flags:
                print(f"FLAG: {flag}")
        else:
            print(f"NOT VERIFIED: {report.first_failure}", file=sys.stderr)
    return 0 if report.verified else 1


def _seal(args: argparse.Namespace) -> int:
    from ceremony.evidence.seal import build_evidence
    from ceremony.people import Person, Quorum

    try:
        spec = json.loads(_read(args.people))
        people = [Person.from_dict(p) for p in spec["people"]]
        quorum = Quorum.from_dict(spec["quorum"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{args.people} is not a people file ({exc}).",
            'Write {"people": [...], "quorum": {...}} as the help shows.',
        ) from exc
    moment = None
    if args.time:
        try:
            moment = datetime.fromisoformat(args.time.replace("Z", "+00:00"))
        except ValueError as exc:
            raise UsageError(f"--time {args.time!r} is not ISO 8601.", "") from exc
        if moment.tzinfo is None:
            raise UsageError("--time needs a time zone, e.g. 2026-11-28T12:00:00Z.", "")
    result = build_evidence(args.workspace, people, quorum, ceremony_time=moment)
    print(f"archive: {result.archive_path}")
    print(f"report:  {result.report_path}")
    print(f"signed by: {', '.join(result.signed_by)}")
    print(f"final fingerprint (SHA-256 of the archive):\n  {result.fingerprint.short}")
    print(f"  {result.fingerprint.words}")
    print(result.fingerprint.qr_terminal())
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    from ceremony.fingerprint import Fingerprint, fingerprint_public_key

    data = _read(args.file)
    fp = fingerprint_public_key(data) if args.public_key else Fingerprint.of(data)
    print(fp.hex)
    print(fp.short)
    print(fp.words)
    print(fp.qr_terminal(ascii_only=args.ascii))
    return 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror}).", "Check the path.") from exc
