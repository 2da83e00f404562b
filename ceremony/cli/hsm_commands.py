"""cli.hsm_commands: `ceremony byok` and `ceremony hsm info`, the scriptable HSM side.

Parses arguments, calls ceremony.hsm and ceremony.byok (and ChallengeRecord for AES), prints;
never takes a PIN as an argument and never overwrites a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from ceremony.errors import CeremonyError, UsageError
from ceremony.files import write_new
from ceremony.keyspec import EC_CURVES, KEY_TYPES
from ceremony.wrap_paths import AUTO, WRAP_CHOICES

PIN_HELP = "The user PIN comes from CEREMONY_PIN or a hidden prompt, never from an argument."


def register(subparsers: Any) -> None:
    byok = subparsers.add_parser(
        "byok",
        help="generate a key in the HSM and wrap it into a .byok file for Azure",
        description="Generate a key inside the HSM and package it for Azure BYOK import "
        "(CKM_RSA_AES_KEY_WRAP). Beside FILE.byok go FILE.pub.pem (RSA, EC) or, for AES, "
        "FILE.challenge.json: a random challenge the new key wrapped, for `ceremony import "
        "--challenge` to prove the vault holds the key. " + PIN_HELP,
    )
    _module_args(byok)
    byok.add_argument("--token", required=True, help="token label")
    byok.add_argument("--kek-pem", required=True, type=Path, help="KEK public key (PEM or DER)")
    byok.add_argument("--kid", required=True, help="the KEK's versioned key identifier")
    byok.add_argument("--type", required=True, dest="kty", help=" | ".join(KEY_TYPES))
    group = byok.add_mutually_exclusive_group()
    group.add_argument("--size", type=int, help="bits: RSA 2048/3072/4096, AES 128/192/256")
    group.add_argument("--curve", help="EC curve: " + " | ".join(EC_CURVES))
    byok.add_argument("--label", required=True, help="label of the new key on the token")
    byok.add_argument("--out", required=True, type=Path, help="the FILE.byok to create")
    byok.add_argument(
        "--wrap",
        choices=WRAP_CHOICES,
        default=AUTO,
        help="the wrap path: native CKM_RSA_AES_KEY_WRAP, or two-step (KWP + RSA-OAEP inside "
        "the HSM); auto (default) takes native where its self-test passes",
    )
    byok.add_argument(
        "--rehearsal",
        action="store_true",
        help="allow a token that fails the wrap self-test (recorded as a warning)",
    )
    byok.set_defaults(handler=run_byok)

    hsm = subparsers.add_parser("hsm", help="inspect a PKCS#11 module and its tokens")
    hsm_sub = hsm.add_subparsers(dest="hsm_command", metavar="SUBCOMMAND", required=True)
    info = hsm_sub.add_parser(
        "info",
        help="library, tokens, mechanisms (and the wrap self-test)",
        description="Describe the module, or one token and its mechanisms. " + PIN_HELP,
    )
    _module_args(info)
    info.add_argument("--token", help="token label (omit to list the tokens)")
    info.add_argument("--serial", help="token serial number")
    info.add_argument("--self-test", action="store_true", help="log in and run the wrap self-test")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=run_info)


def _module_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--module", help="path of the PKCS#11 module (default: SoftHSM2 on this machine)"
    )


def _module_path(args: argparse.Namespace) -> str:
    if args.module:
        return args.module
    from ceremony.softhsm import find_module

    return find_module()


def run_byok(args: argparse.Namespace) -> int:
    from ceremony.byok import ByokPackage, generator_text, parse_byok, parse_kid
    from ceremony.evidence.records import ChallengeRecord
    from ceremony.hsm import load_kek, open_session, read_pin, require_conformant
    from ceremony.hsm.keys import label_taken
    from ceremony.keyspec import KeySpec

    out: Path = args.out
    if out.suffix != ".byok":
        raise UsageError(f"Output {out} must end in .byok.", "Name the output FILE.byok.")
    spec = KeySpec(args.kty, size=args.size, curve=args.curve)
    aes = spec.family == "AES"
    public_out = out.with_suffix(".pub.pem") if not aes else None
    challenge_out = out.with_suffix(".challenge.json") if aes else None
    for path in (out, public_out, challenge_out):
        if path is not None and path.exists():
            raise UsageError(f"{path} exists already.", "Choose a new --out; nothing was changed.")
    if not out.parent.is_dir():
        raise UsageError(f"Directory {out.parent} does not exist.", "Create it first.")
    kid = parse_kid(args.kid)
    kek_bytes = _read_file(args.kek_pem, "KEK public key")
    kek = load_kek(kek_bytes)
    module = _module_path(args)
    pin = read_pin()

    with open_session(module, args.token, pin=pin) as session:
        token = session.describe().token
        print(f"token: {token.label!r} {token.manufacturer} {token.model} serial {token.serial}")
        if session.label_in_use(args.label):
            raise label_taken(args.label)
        result = session.self_test(args.wrap, "--wrap")
        print(result.summary())
        warning = require_conformant(result, rehearsal=args.rehearsal)
        if warning:
            print(f"ceremony: warning: {warning}", file=sys.stderr)
        key = session.generate(spec, args.label)
        attrs = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in key.attributes.items())
        print(f"generated {spec.describe()} key {key.label!r} (CKA_ID {key.id_hex}): {attrs}")
        try:
            ciphertext = session.wrap_for_byok(args.label, kek_bytes, result)
            # The challenge is drawn and wrapped in this session, then forgotten: only its
            # digest is written, so the online side cannot answer without the vault's key.
            challenge = ChallengeRecord.drawn_by(session, args.label) if aes else None
        except CeremonyError as exc:
            exc.message = f"Key {args.label!r} was generated but not packaged: {exc.message}"
            raise
        generator = generator_text(token.manufacturer, token.model, token.firmware_version)
    package = ByokPackage(kid.kid, ciphertext, generator)
    data = package.to_bytes()
    parse_byok(data, kek_bits=kek.bits)
    write_new(out, data)
    print(f"wrote {out} ({len(ciphertext)}-byte ciphertext for KEK {kid.kid})")
    if public_out is not None and key.public_key_pem:
        write_new(public_out, key.public_key_pem.encode("ascii"))
        print(f"wrote {public_out} (public key)")
    if challenge_out is not None and challenge is not None:
        write_new(challenge_out, challenge.to_json())
        print(
            f"wrote {challenge_out} (challenge wrapped by the key, SHA-256 "
            f"{challenge.challenge_sha256}; give it to `ceremony import --challenge`)"
        )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ceremony.hsm import describe_module, open_session, read_pin

    module = _module_path(args)
    if args.token is None and args.serial is None:
        if args.self_test:
            raise UsageError("--self-test needs a token.", "Add --token LABEL.")
        info = describe_module(module)
        _print(info.to_dict(), args.json)
        return 0
    pin = read_pin() if args.self_test else None
    with open_session(module, args.token, serial=args.serial, pin=pin) as session:
        record = session.describe().to_dict()
        if args.self_test:
            record["self_test"] = session.self_test().to_dict()
    _print(record, args.json)
    return 0


def _print(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, indent=2))
        return
    library = record["library"]
    print(f"module: {library['path']}")
    print(
        f"library: {library['manufacturer']} {library['description']} "
        f"{library['library_version']} (PKCS#11 {library['cryptoki_version']})"
    )
    for token in record["tokens"]:
        print(
            f"token: {token['label']!r} {token['manufacturer']} {token['model']} "
            f"serial {token['serial']} firmware {token['firmware_version']}"
        )
    if record["mechanisms"]:
        names = ", ".join(m["name"] for m in record["mechanisms"])
        print(textwrap.fill(names, 100, initial_indent="mechanisms: ", subsequent_indent="  "))
    if "self_test" in record:
        test = record["self_test"]
        for candidate in test["candidates"]:
            print(f"self-test: {candidate['name']}: {candidate['outcome']}")
        print(f"self-test: native CKM_RSA_AES_KEY_WRAP: {test['native']}")
        print(f"self-test: two-step: {test['two_step']['verdict']}")
        print(f"self-test: chosen {test['path']}; {test['verdict']}")


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"Cannot read the {what} {path}: {exc.strerror}.", "Check the path."
        ) from exc
