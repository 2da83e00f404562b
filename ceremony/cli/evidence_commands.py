"""cli.evidence_commands: `ceremony verify`, `seal`, `script` and `fingerprint`.

Parses arguments, calls ceremony.evidence / ceremony.fingerprint, prints; no logic of its own.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from ceremony.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="verify an evidence archive or sealed workspace offline",
        description="Recompute every digest, the transcript chain, each signature and the quorum, "
        "and check every .byok and import record; only the plan's signing keys count. Anchor the "
        "verdict with --plan, --expect-sha256 and --expect-head; its last line says what it rests "
        "on. Exit 0 verified, 1 not verified, 2 unusable input. Needs no network and no HSM.",
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
    verify.add_argument(
        "--plan",
        type=Path,
        metavar="REVIEWED.toml",
        help="the plan reviewed before the day (with its public keys beside it): the archive's "
        "plan must be byte-identical, and only its keys' signatures count",
    )
    verify.add_argument(
        "--expect-sha256",
        metavar="HEX",
        help="the archive's SHA-256 as written down at the end of the ceremony",
    )
    verify.add_argument(
        "--expect-head",
        action="append",
        default=[],
        metavar="PHASE=VALUE",
        help="a checkpoint's transcript head as the witnesses wrote it: its first words, or at "
        "least 8 hex digits (spaces and case ignored); repeatable",
    )
    verify.add_argument(
        "--production",
        action="store_true",
        help="fail a rehearsal, or an archive with any recorded exception",
    )
    verify.set_defaults(handler=_verify)

    seal = subparsers.add_parser(
        "seal",
        help="sign a finished workspace and write its evidence archive",
        description="Seal WORKSPACE: report, in-toto statement, one DSSE signature per signer, "
        "deterministic archive.tar. Only the people, keys and quorum of the workspace's plan.toml "
        "may seal. PINs come from CEREMONY_PIN_<NAME> or a hidden prompt.",
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

    script = subparsers.add_parser(
        "script",
        help="write the printable ceremony script for a plan, before the day",
        description="Write DIR/ceremony-script.html (and .pdf where Chromium or WeasyPrint is "
        "installed): roles and names, each phase's numbered steps to tick and initial, the plan's "
        "and KEK's fingerprints as hex, words and QR, a line per checkpoint, exceptions and "
        "signature pages.",
    )
    script.add_argument("plan", type=Path, help="the reviewed plan")
    script.add_argument("--out", type=Path, required=True, metavar="DIR")
    script.set_defaults(handler=_script)

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
    from ceremony.evidence.anchors import Anchors, ExpectedHead, ReviewedPlan, parse_sha256
    from ceremony.evidence.verify import verify_path
    from ceremony.fingerprint import fingerprint_public_key
    from ceremony.terminal import escape

    anchors = Anchors(
        reviewed_plan=ReviewedPlan.load(args.plan) if args.plan else None,
        signer_keys=tuple(fingerprint_public_key(_read(p)).hex for p in args.signer_key),
        archive_sha256=parse_sha256(args.expect_sha256) if args.expect_sha256 else None,
        heads=tuple(ExpectedHead.parse(text) for text in args.expect_head),
    )
    report = verify_path(args.path, anchors=anchors, production=args.production)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.verified else 1
    print(report.table())
    if report.archive_sha256:
        print(f"\narchive sha256: {report.archive_sha256}")
    if report.rehearsal:
        print("REHEARSAL: this archive records a rehearsal, not a production ceremony.")
    for exception in report.exceptions:
        print(f"EXCEPTION: {escape(exception)}")
    if report.verified:
        print(f"VERIFIED: signed by {escape(', '.join(report.signed_by))}.")
        for flag in report.flags:
            print(f"FLAG: {escape(flag)}")
    else:
        print(f"NOT VERIFIED: {escape(report.first_failure or '')}")
    print(report.rests_on)
    return 0 if report.verified else 1


def _seal(args: argparse.Namespace) -> int:
    from ceremony.evidence.seal import build_evidence
    from ceremony.people import parse_people_file

    people, quorum = parse_people_file(_read(args.people), str(args.people))
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


def _script(args: argparse.Namespace) -> int:
    from ceremony.script import write_script

    written = write_script(args.plan, args.out)
    print(f"script: {written.html}")
    print(f"pdf:    {written.pdf or '(no PDF renderer installed; print the HTML)'}")
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
