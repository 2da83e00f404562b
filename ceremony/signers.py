"""signers: turn a person's signer reference into a securesystemslib signer, and make signing keys.

References: "file:PATH" (PKCS#8 PEM key file) or "pkcs11:token=LABEL;id=HEX[;module-path=PATH]"
(an EC P-256/P-384 key in a PKCS#11 token). PINs and passphrases come from the person's
CEREMONY_PIN_<NAME> variable or a hidden prompt; they are never part of a reference or stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, HSMSigner, Signer

from ceremony.errors import HsmError, PlanError, UsageError
from ceremony.files import write_new
from ceremony.hsm.pin import read_pin
from ceremony.people import Person


@dataclass(frozen=True)
class SignerRef:
    """A parsed signer reference."""

    kind: str  # "file" or "pkcs11"
    path: str = ""
    token: str = ""
    key_id: int = 0
    module_path: str = ""

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file:{self.path}"
        text = f"pkcs11:token={self.token};id={self.key_id:02x}"
        return f"{text};module-path={self.module_path}" if self.module_path else text


def parse_reference(text: str) -> SignerRef:
    """Read "file:PATH" or "pkcs11:token=LABEL;id=HEX[;module-path=PATH]"."""
    if text.startswith("file:") and len(text) > 5:
        return SignerRef("file", path=text[5:])
    if text.startswith("pkcs11:"):
        fields: dict[str, str] = {}
        for part in text[7:].replace("?", ";").split(";"):
            name, sep, value = part.partition("=")
            if not sep:
                raise PlanError(f"Signer reference {text!r}: {part!r} is not name=value.", "")
            fields[name.strip()] = unquote(value.strip())
        unknown = set(fields) - {"token", "id", "module-path"}
        if unknown or "token" not in fields or "id" not in fields:
            raise PlanError(
                f"Signer reference {text!r} needs token= and id= (and optionally module-path=).",
                "Write for example pkcs11:token=alice;id=01.",
            )
        try:
            key_id = int(fields["id"], 16)
        except ValueError as exc:
            raise PlanError(f"Signer reference {text!r}: id must be hex.", "") from exc
        return SignerRef(
            "pkcs11",
            token=fields["token"],
            key_id=key_id,
            module_path=fields.get("module-path", ""),
        )
    raise PlanError(
        f"Signer reference {text!r} is neither file:PATH nor pkcs11:token=LABEL;id=HEX.",
        "Give each signing person one of those forms.",
    )


def load_signer(person: Person, key_file: Path | None = None) -> Signer:
    """A signer for `person`'s key; asks for the PIN or passphrase only when it is needed.

    `key_file` is a `file:` reference's path resolved by the caller (the plan resolves it against
    its own folder); without it the path is taken as written."""
    if not person.signer:
        raise PlanError(f"{person.name} has no signer reference.", "Add one to the plan.")
    ref = parse_reference(person.signer)
    if ref.kind == "file":
        return _file_signer(person, key_file or Path(ref.path))
    return _token_signer(person, ref)


def _file_signer(person: Person, path: Path) -> Signer:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"{person.name}'s signing key file {path} cannot be read ({exc.strerror}).",
            "Check the path in the plan and that the key medium is mounted.",
        ) from exc
    password = None
    if b"ENCRYPTED" in data:
        prompt = f"Passphrase of {person.name}'s signing key (hidden): "
        password = read_pin(person.pin_env_var, prompt).encode()
    try:
        private_key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"{person.name}'s signing key file {path} cannot be opened (wrong passphrase, or not "
            "a PEM private key).",
            f"Check the file and the passphrase in {person.pin_env_var}.",
        ) from exc
    try:
        return CryptoSigner(private_key, person.key)
    except ValueError as exc:
        raise UsageError(
            f"{person.name}'s signing key file {path} does not match their public key in the plan.",
            "Use the key file that belongs to the public key listed for them.",
        ) from exc


def _token_signer(person: Person, ref: SignerRef) -> Signer:
    if ref.module_path:
        os.environ["PYKCS11LIB"] = ref.module_path
    if not os.environ.get("PYKCS11LIB"):
        raise UsageError(
            f"{person.name}'s signer is a PKCS#11 token but no module path is known.",
            "Add ;module-path=/path/to/module.so to the reference or set PYKCS11LIB.",
        )
    prompt = f"PIN of {person.name}'s token {ref.token!r} (hidden): "
    try:
        return HSMSigner(
            ref.key_id, person.key, lambda _: read_pin(person.pin_env_var, prompt), ref.token
        )
    except ValueError as exc:
        raise UsageError(
            f"{person.name}'s public key is not EC P-256 or P-384, which token signing needs.",
            "Make their signing key on the token an EC P-256 or P-384 key.",
        ) from exc


def create_file_signing_key(path: Path, passphrase: str | None = None) -> tuple[str, str]:
    """Make an EC P-256 signing key file (created exclusively, mode 0600); return the signer
    reference and the public key PEM. For rehearsals and people without a token."""
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    write_new(
        Path(path), pem, mode=0o600, remedy="Choose another path; keys are never overwritten."
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"file:{path}", public.decode()


def create_token_signing_key(
    module_path: str, token_label: str, pin: str, key_id: int = 1, curve: str = "P-256"
) -> tuple[str, str]:
    """Generate an EC signing key pair inside a PKCS#11 token (private part non-extractable);
    return the signer reference and the public key PEM."""
    import pkcs11
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    curve_names = {"P-256": "secp256r1", "P-384": "secp384r1"}
    if curve not in curve_names:
        raise UsageError(f"Token signing keys are P-256 or P-384, not {curve}.", "")
    id_bytes = key_id.to_bytes(max(1, (key_id.bit_length() + 7) // 8), "big")
    try:
        token = pkcs11.lib(module_path).get_token(token_label=token_label)
        with token.open(rw=True, user_pin=pin) as session:
            params = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(curve_names[curve])},
                local=True,
            )
            public, _ = params.generate_keypair(
                store=True,
                id=id_bytes,
                label=f"ceremony-signing-{key_id:02x}",
                private_template={
                    pkcs11.Attribute.SENSITIVE: True,
                    pkcs11.Attribute.EXTRACTABLE: False,
                },
            )
            der = encode_ec_public_key(public)
    except pkcs11.PKCS11Error as exc:
        raise HsmError(
            f"Could not make a signing key in token {token_label!r}: {type(exc).__name__}.",
            "Check the token label, the PIN and that the key id is free.",
        ) from exc
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ref = SignerRef("pkcs11", token=token_label, key_id=key_id, module_path=module_path)
    return str(ref), pem.decode()
