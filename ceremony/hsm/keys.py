"""hsm.keys: target key generation inside the HSM, finding keys by label, their public halves.

Owns templates and the checks on what the token made; never reads a private or secret value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11x

from ceremony.errors import HsmError
from ceremony.hsm.module import hsm_step
from ceremony.keyspec import KeySpec

if TYPE_CHECKING:
    from ceremony.evidence.records import KeyRecord

# Named curves: DER of the OID for CKA_EC_PARAMS, and the matching pyca curve.
CURVES: dict[str, tuple[bytes, ec.EllipticCurve]] = {
    "P-256": (bytes.fromhex("06082a8648ce3d030107"), ec.SECP256R1()),
    "P-384": (bytes.fromhex("06052b81040022"), ec.SECP384R1()),
    "P-521": (bytes.fromhex("06052b81040023"), ec.SECP521R1()),
    "P-256K": (bytes.fromhex("06052b8104000a"), ec.SECP256K1()),
}
SECURITY_ATTRIBUTES = (
    Attribute.LOCAL,
    Attribute.ALWAYS_SENSITIVE,
    Attribute.NEVER_EXTRACTABLE,
    Attribute.EXTRACTABLE,
    Attribute.SENSITIVE,
    Attribute.TOKEN,
    Attribute.PRIVATE,
    Attribute.WRAP_WITH_TRUSTED,
)
# What a generated key must show before it is trusted (boulder checks every key it makes).
_REQUIRED = {
    "CKA_LOCAL": True,
    "CKA_SENSITIVE": True,
    "CKA_EXTRACTABLE": True,
    "CKA_TOKEN": True,
    "CKA_ALWAYS_SENSITIVE": True,
}
_SIGNING = MechanismFlag.SIGN | MechanismFlag.VERIFY
_CAPABILITIES = {
    "RSA": _SIGNING | MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
    "EC": _SIGNING,
    "AES": MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT | MechanismFlag.WRAP,
}


@dataclass(frozen=True)
class GeneratedKey:
    """A target key on the token: its names, type, public half and security attributes."""

    label: str
    id_hex: str
    spec: KeySpec
    public_key_pem: str | None
    attributes: dict[str, bool]

    def to_evidence(self, name: str, hsm: dict[str, Any]) -> KeyRecord:
        """keys/<name>.json in the evidence schema; `hsm` describes the library and token."""
        from ceremony.evidence.records import KeyRecord
        from ceremony.fingerprint import fingerprint_public_key

        pem = self.public_key_pem
        return KeyRecord(
            name=name,
            kty=self.spec.kty,
            size=self.spec.size,
            curve=self.spec.curve,
            label=self.label,
            id_hex=self.id_hex,
            attributes=dict(self.attributes),
            public_key_sha256=fingerprint_public_key(pem).hex if pem else None,
            hsm=hsm,
        )


def generate(
    session: Any, spec: KeySpec, label: str, *, wrap_with_trusted: bool = False
) -> tuple[GeneratedKey, Any]:
    """Generate `spec` as a token key labelled `label`, with a random CKA_ID from the HSM.

    `wrap_with_trusted`: the token will wrap it only under a key the security officer trusted.
    Returns the description and the private or secret key object (for wrapping it next).
    """
    if not label or len(label.encode()) > 128:
        raise HsmError(f"Key label {label!r} must be 1 to 128 bytes.", "Choose another label.")
    if find_objects(session, label):
        raise label_taken(label)
    with hsm_step("Drawing a random CKA_ID from the HSM"):
        key_id = session.generate_random(128)
    capabilities = _CAPABILITIES[spec.family]
    common = {"id": key_id, "label": label, "store": True, "capabilities": capabilities}
    secret = {
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: True,
        Attribute.PRIVATE: True,
        Attribute.WRAP_WITH_TRUSTED: wrap_with_trusted,
    }
    with hsm_step(f"Generating {spec.describe()} key {label!r}"):
        if spec.family == "AES":
            public, key = (
                None,
                session.generate_key(KeyType.AES, spec.size, template=secret, **common),
            )
        elif spec.family == "RSA":
            public, key = session.generate_keypair(
                KeyType.RSA,
                spec.size,
                public_template={Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
                private_template=secret,
                **common,
            )
        else:
            public, key = session.generate_keypair(
                KeyType.EC,
                public_template={Attribute.EC_PARAMS: CURVES[spec.curve][0]},
                private_template=secret,
                **common,
            )
    attributes = _check_generated(key, label, wrap_with_trusted)
    public_pem = _public_pem(public, spec, label)
    return GeneratedKey(label, key_id.hex(), spec, public_pem, attributes), key


def label_taken(label: str) -> HsmError:
    return HsmError(
        f"The token already holds an object labelled {label!r}.",
        "Choose a new label; an existing key is never replaced.",
    )


def find_key(session: Any, label: str) -> GeneratedKey | None:
    """The target key labelled `label`, described as generate() did, or None."""
    key = private_or_secret(session, label, required=False)
    if key is None:
        return None
    with hsm_step(f"Reading key {label!r}"):
        spec = _spec_of(session, key, label)
        attributes = security_attributes(key)
        key_id = key[Attribute.ID]
        public = None if spec.family == "AES" else _public_object(session, label)
    public_pem = _public_pem(public, spec, label)
    return GeneratedKey(label, bytes(key_id).hex(), spec, public_pem, attributes)


def remove_half_made(session: Any, label: str) -> int:
    """Destroy the public half a generation interrupted mid-way left (a key pair's public object
    made, its private one not); refuses when a private or secret key carries the label."""
    if private_or_secret(session, label, required=False) is not None:
        raise label_taken(label)
    halves = [
        o for o in find_objects(session, label) if o[Attribute.CLASS] == ObjectClass.PUBLIC_KEY
    ]
    with hsm_step(f"Removing the half-made key pair {label!r}"):
        for half in halves:
            half.destroy()
    return len(halves)


def find_objects(session: Any, label: str) -> list[Any]:
    with hsm_step(f"Searching the token for {label!r}"):
        return list(session.get_objects({Attribute.LABEL: label}))


def private_or_secret(session: Any, label: str, required: bool = True) -> Any:
    """The private or secret key object labelled `label` (one only)."""
    wanted = (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)
    with hsm_step(f"Searching the token for key {label!r}"):
        found = [obj for obj in find_objects(session, label) if obj[Attribute.CLASS] in wanted]
    if len(found) > 1:
        raise HsmError(f"{len(found)} keys are labelled {label!r}.", "Give each key its own label.")
    if not found and required:
        raise HsmError(f"The token holds no key labelled {label!r}.", "Check the label.")
    return found[0] if found else None


def security_attributes(key: Any) -> dict[str, bool]:
    """CKA_LOCAL, CKA_ALWAYS_SENSITIVE, … as the token reports them, by their CKA_ names."""
    with hsm_step("Reading the key's security attributes"):
        values = key.get_attributes(list(SECURITY_ATTRIBUTES))
    return {f"CKA_{attr.name}": bool(values.get(attr)) for attr in SECURITY_ATTRIBUTES}


def _objects(session: Any, label: str, cls: ObjectClass) -> list[Any]:
    with hsm_step(f"Searching the token for {label!r}"):
        return list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: cls}))


def _check_generated(key: Any, label: str, wrap_with_trusted: bool) -> dict[str, bool]:
    """Refuse (and remove) a key whose attributes or readability are not what was asked."""
    attributes = security_attributes(key)
    required = {**_REQUIRED, "CKA_WRAP_WITH_TRUSTED": wrap_with_trusted}
    wrong = [name for name, want in required.items() if attributes[name] != want]
    readable = [name for name in ("VALUE", "PRIVATE_EXPONENT") if _readable(key, Attribute[name])]
    if wrong or readable:
        key.destroy()
        raise HsmError(
            f"The token made key {label!r} with unexpected attributes "
            f"({', '.join(wrong + [f'CKA_{n} readable' for n in readable])}); it was deleted.",
            "The token does not honour the template; check its policy or use another HSM.",
        )
    return attributes


def _readable(key: Any, attribute: Attribute) -> bool:
    try:
        key[attribute]
    except (p11x.AttributeSensitive, p11x.AttributeTypeInvalid):
        return False
    return True


def _spec_of(session: Any, key: Any, label: str) -> KeySpec:
    key_type = key[Attribute.KEY_TYPE]
    if key_type == KeyType.AES:
        return KeySpec("oct-HSM", size=key[Attribute.VALUE_LEN] * 8)
    public = _public_object(session, label)
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(public[Attribute.MODULUS], "big")
        return KeySpec("RSA-HSM", size=modulus.bit_length())
    params = bytes(public[Attribute.EC_PARAMS])
    for curve, (der, _) in CURVES.items():
        if der == params:
            return KeySpec("EC-HSM", curve=curve)
    raise HsmError(f"Key {label!r} is on a curve Azure cannot import.", "Use another key.")


def _public_object(session: Any, label: str) -> Any:
    found = _objects(session, label, ObjectClass.PUBLIC_KEY)
    if len(found) != 1:
        raise HsmError(
            f"Expected one public key labelled {label!r}, found {len(found)}.",
            "Check the token's objects with `pkcs11-tool --list-objects`.",
        )
    return found[0]


def _public_pem(public: Any, spec: KeySpec, label: str) -> str | None:
    """The public half as SubjectPublicKeyInfo PEM, rebuilt from the token's attributes."""
    if public is None:
        return None
    with hsm_step(f"Reading the public key of {label!r}"):
        if spec.family == "RSA":
            key = rsa.RSAPublicNumbers(
                int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(public[Attribute.MODULUS], "big"),
            ).public_key()
        else:
            curve = CURVES[spec.curve][1]
            point = _bare_point(bytes(public[Attribute.EC_POINT]), curve)
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _bare_point(value: bytes, curve: ec.EllipticCurve) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING per the spec; some tokens give the bare point."""
    bare_length = 1 + 2 * ((curve.key_size + 7) // 8)
    if len(value) == bare_length:
        return value
    header = 2 if value[1] < 0x80 else 2 + (value[1] & 0x7F)
    return value[header:]
