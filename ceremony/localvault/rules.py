"""localvault.rules: which key types, sizes, curves and operations each vault flavour accepts.

Owns the refusals Azure makes on type and key_ops grounds. Never touches key material or storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from ceremony.localvault.errors import bad_parameter

RSA_SIZES = (2048, 3072, 4096)
AES_SIZES = (128, 192, 256)
CURVES = ("P-256", "P-384", "P-521", "P-256K")
ALL_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")

_FAMILY = {"RSA": "RSA", "RSA-HSM": "RSA", "EC": "EC", "EC-HSM": "EC", "oct-HSM": "oct"}
_FAMILY_OPS = {
    "RSA": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"),
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}


@dataclass(frozen=True)
class Flavour:
    """Key Vault Premium or Managed HSM: what the vault can hold."""

    managed_hsm: bool

    @property
    def name(self) -> str:
        return "Managed HSM" if self.managed_hsm else "Key Vault Premium"

    @property
    def key_types(self) -> tuple[str, ...]:
        if self.managed_hsm:
            return ("RSA-HSM", "EC-HSM", "oct-HSM")
        return ("RSA", "RSA-HSM", "EC", "EC-HSM")

    def check_kty(self, kty: str) -> str:
        """Return the key's family ('RSA', 'EC', 'oct'); refuse a type this flavour cannot hold."""
        if kty not in self.key_types:
            hint = " oct-HSM keys live only in a Managed HSM." if kty == "oct-HSM" else ""
            raise bad_parameter(
                f"Key type {kty!r} is not supported by this {self.name}; use one of "
                f"{', '.join(self.key_types)}.{hint}"
            )
        return _FAMILY[kty]


def family_of(kty: str) -> str:
    """'RSA', 'EC' or 'oct' for a stored key type."""
    return _FAMILY[kty]


def check_size(family: str, size: int) -> None:
    """Refuse a size Azure does not offer for the family."""
    allowed = RSA_SIZES if family == "RSA" else AES_SIZES
    if size not in allowed:
        raise bad_parameter(
            f"Key size {size} is not supported for {family} keys; use one of "
            f"{', '.join(map(str, allowed))}."
        )


def check_curve(curve: str) -> None:
    """Refuse a curve Azure does not offer."""
    if curve not in CURVES:
        raise bad_parameter(f"Curve {curve!r} is not supported; use one of {', '.join(CURVES)}.")


def resolve_key_ops(
    kty: str, family: str, requested: list[str] | None, *, exportable: bool, creating: bool
) -> list[str]:
    """The key_ops a key gets: the request's (checked) or the family default.

    'import' marks a key exchange key: RSA-HSM only, made inside the vault, and alone, so that a KEK
    can never sign, decrypt or be exported.
    """
    if requested is None:
        return list(_FAMILY_OPS[family])
    unknown = [op for op in requested if op not in ALL_OPS]
    if unknown:
        raise bad_parameter(f"Unknown key operation(s) {unknown}; use any of {', '.join(ALL_OPS)}.")
    if "import" in requested:
        if kty != "RSA-HSM" or not creating:
            raise bad_parameter(
                "The 'import' operation is only for a key exchange key created in the vault as "
                "RSA-HSM."
            )
        if requested != ["import"]:
            raise bad_parameter(
                "A key exchange key must have key_ops exactly ['import']; 'import' excludes every "
                "other operation."
            )
        if exportable:
            raise bad_parameter("A key exchange key can never be exportable.")
        return ["import"]
    if "export" in requested and not exportable:
        raise bad_parameter("The 'export' operation needs an exportable key.")
    wrong = [op for op in requested if op not in (*_FAMILY_OPS[family], "export")]
    if wrong:
        raise bad_parameter(f"Key operation(s) {wrong} are not valid for {kty} keys.")
    return list(dict.fromkeys(requested))
