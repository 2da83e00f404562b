"""cli.vault_commands: `ceremony kek create|fetch` and `ceremony import` — parse, call, print.

All logic lives in ceremony.vault; this module only turns arguments into calls and results into
lines for the witnesses. Never opens an HSM: an AES key is proven with the challenge record
`ceremony byok` left beside its .byok.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ceremony.errors import UsageError
from ceremony.keyspec import EC_CURVES, KEY_TYPES

if TYPE_CHECKING:
    from ceremony.evidence.records import ChallengeRecord


def _add_vault_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vault", metavar="URL", help="https://<name>.vault.azure.net (or HSM)")
    parser.add_argument(
        "--local-vault",
        metavar="DIR",
        type=Path,
        help="trust the local rehearsal vault serving from state directory DIR (its CA and token)",
    )


def register(subparsers: Any) -> None:
    kek = subparsers.add_parser("kek", help="create or fetch the key exchange key (KEK)")
    kek_sub = kek.add_subparsers(dest="kek_command", metavar="ACTION", required=True)

    create = kek_sub.add_parser("create", help="create an RSA-HSM KEK with key_ops ['import']")
    _add_vault_args(create)
    create.add_argument("--name", required=True)
    create.add_argument("--size", type=int, default=3072, choices=(2048, 3072, 4096))
    create.add_argument("--out", type=Path, metavar="FILE.pem", help="also write PEM and .json")
    create.set_defaults(handler=kek_create)

    fetch = kek_sub.add_parser("fetch", help="fetch and check a KEK; write FILE.pem and FILE.json")
    _add_vault_args(fetch)
    fetch.add_argument("--name", required=True)
    fetch.add_argument("--version", help="KEK version (default: the latest)")
    fetch.add_argument("--out", type=Path, required=True, metavar="FILE.pem")
    fetch.add_argument(
        "--expect-fingerprint",
        metavar="HEX",
        help="SHA-256 of the DER public key obtained out of band; a mismatch stops the ceremony",
    )
    fetch.set_defaults(handler=kek_fetch)

    imp = subparsers.add_parser("import", help="import a .byok and prove the vault holds the key")
    _add_vault_args(imp)
    imp.add_argument("--name", required=True, help="name of the key in the vault")
    imp.add_argument("--byok", type=Path, required=True, metavar="FILE")
    imp.add_argument("--type", required=True, choices=KEY_TYPES, dest="kty")
    imp.add_argument("--curve", choices=EC_CURVES)
    imp.add_argument("--ops", metavar="LIST", help="comma-separated key_ops (default: by type)")
    imp.add_argument("--hsm-public-key", type=Path, metavar="FILE.pem", help="RSA and EC")
    imp.add_argument(
        "--challenge",
        type=Path,
        metavar="FILE.challenge.json",
        help="oct-HSM: the challenge `ceremony byok` wrote beside the .byok",
    )
    imp.add_argument("--new-version", action="store_true", help="add a version to an existing key")
    imp.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    imp.add_argument("--not-before", metavar="ISO-8601")
    imp.add_argument("--expires", metavar="ISO-8601")
    imp.add_argument("--disabled", action="store_true", help="import the key disabled")
    imp.add_argument("--exportable", action="store_true")
    imp.add_argument("--release-policy", type=Path, metavar="FILE.json")
    imp.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="default: <name>.import.json (a new version: <name>.<n>.import.json)",
    )
    imp.set_defaults(handler=import_key)


def _connect(args: argparse.Namespace) -> Any:
    from ceremony.vault import connect

    return connect(args.vault, local_vault_dir=args.local_vault)


def _print_kek(kek: Any, written: tuple[Path, ...] = ()) -> None:
    print(f"KEK kid:      {kek.kid}")
    print(f"KEK type:     RSA-HSM {kek.size}, key_ops {list(kek.key_ops)}")
    print(f"Fingerprint:  {kek.fingerprint.short}")
    print(f"Words:        {kek.fingerprint.words}")
    print(kek.fingerprint.qr_terminal(), end="")
    for path in written:
        print(f"Wrote {path}")


def kek_create(args: argparse.Namespace) -> int:
    from ceremony.files import refuse_existing
    from ceremony.vault import create_kek, write_kek
    from ceremony.vault.kek import kek_json_path

    if args.out:
        refuse_existing(args.out, kek_json_path(args.out))
    kek = create_kek(_connect(args), args.name, size=args.size)
    _print_kek(kek, write_kek(kek, args.out) if args.out else ())
    return 0


def kek_fetch(args: argparse.Namespace) -> int:
    from ceremony.files import refuse_existing
    from ceremony.vault import fetch_kek, write_kek
    from ceremony.vault.kek import kek_json_path

    refuse_existing(args.out, kek_json_path(args.out))
    kek = fetch_kek(
        _connect(args), args.name, version=args.version, expect_fingerprint=args.expect_fingerprint
    )
    confirmed = kek.fingerprint.hex if args.expect_fingerprint else None
    _print_kek(kek, write_kek(kek, args.out, out_of_band_sha256=confirmed))
    if args.expect_fingerprint:
        print("Fingerprint matches the expected value.")
    return 0


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO-8601 time.", "Use 2027-01-31T00:00Z."
        ) from None
    if value.tzinfo is None:
        raise UsageError(f"{option} {text!r} has no time zone.", "Add Z (UTC) or an offset.")
    return value


def _tags(items: list[str]) -> dict[str, str]:
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {item!r} is not KEY=VALUE.", "Write it as --tag owner=team.")
        tags[key] = value
    return tags


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"Cannot read the {what} {path}: {exc.strerror}.", "Check the path."
        ) from None


def _options(args: argparse.Namespace) -> Any:
    from ceremony.vault import ImportOptions

    ops = tuple(op.strip() for op in args.ops.split(",") if op.strip()) if args.ops else None
    policy = _read(args.release_policy, "release policy") if args.release_policy else None
    return ImportOptions(
        key_ops=ops,
        enabled=not args.disabled,
        not_before=_when(args.not_before, "--not-before"),
        expires_on=_when(args.expires, "--expires"),
        exportable=args.exportable,
        release_policy=policy,
        tags=_tags(args.tag),
        new_version=args.new_version,
    )


def _challenge(path: Path | None, kty: str) -> ChallengeRecord | None:
    """The ChallengeRecord `ceremony byok` wrote for an AES key, or None when none was given."""
    if path is None:
        return None
    if kty != "oct-HSM":
        raise UsageError(
            f"--challenge proves an oct-HSM key, not {kty}.",
            "Drop it; give --hsm-public-key for RSA and EC keys.",
        )
    from ceremony.evidence.records import ChallengeRecord

    content = _read(path, "challenge record")
    try:
        return ChallengeRecord.from_json(content, str(path))
    except UsageError as exc:
        exc.remedy = "Give the FILE.challenge.json that `ceremony byok` wrote beside the .byok."
        raise


def import_key(args: argparse.Namespace) -> int:
    from ceremony.errors import VerificationError
    from ceremony.files import refuse_existing
    from ceremony.vault import (
        import_and_prove,
        import_record_path,
        load_public_key,
        write_import_record,
    )

    record_path = args.record or import_record_path(
        args.byok.parent, args.name, new_version=args.new_version
    )
    refuse_existing(record_path)
    byok = _read(args.byok, ".byok file")
    hsm_public = None
    if args.hsm_public_key:
        hsm_public = load_public_key(
            _read(args.hsm_public_key, "public key"), str(args.hsm_public_key)
        )
    challenge = _challenge(args.challenge, args.kty)
    options = _options(args)
    conn = _connect(args)
    try:
        record = import_and_prove(
            conn,
            args.name,
            byok,
            args.kty,
            curve=args.curve,
            options=options,
            hsm_public=hsm_public,
            challenge=challenge,
        )
    except VerificationError as exc:
        # Every check that fails here runs after the import: the key is in the vault.
        exc.message = f"{exc.message} The key stays imported; {record_path} was not written."
        if challenge is not None:
            exc.remedy += (
                " If it was the wrong challenge record, rerun with the one `ceremony byok` wrote "
                "beside this .byok: the import is recognised, not repeated."
            )
        raise
    write_import_record(record, record_path)
    data = record.to_dict()
    verb = "Found the earlier import of" if data["recognised_existing_import"] else "Imported"
    print(f"{verb} {data['kid']}")
    if challenge is not None:
        print(f"Challenge:    {args.challenge} (wrapped by HSM key {challenge.name!r})")
    if data["public_key_match"]:
        print("Public key:   equal to the HSM's")
    if data["proof"]:
        proof = data["proof"]
        print(f"Possession:   proven ({proof['method']} {proof['algorithm']})")
    else:
        print(f"Possession:   NOT proven: {data['no_proof_reason']}")
        if args.kty == "oct-HSM" and challenge is None:
            print(f"              (give --challenge {args.byok.with_suffix('.challenge.json')})")
        elif args.kty != "oct-HSM" and hsm_public is None:
            print("              (give --hsm-public-key)")
    print(f"Wrote {record_path}")
    return 0
