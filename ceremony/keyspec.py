"""keyspec: which key types Azure can import, and where.

One source of truth for types, sizes and curves, shared by the plan, the HSM and the vault client.
"""

from __future__ import annotations

from dataclasses import dataclass

from ceremony.errors import UsageError

RSA_SIZES = (2048, 3072, 4096)
AES_SIZES = (128, 192, 256)
EC_CURVES = ("P-256", "P-384", "P-521", "P-256K")
KEY_TYPES = ("RSA-HSM", "EC-HSM", "oct-HSM")
VAULT_FLAVOURS = ("keyvault", "managed-hsm")


@dataclass(frozen=True)
class KeySpec:
    """A target key as Azure names it: kty plus size (RSA, AES) or curve (EC)."""

    kty: str
    size: int | None = None
    curve: str | None = None

    def __post_init__(self) -> None:
        if self.kty not in KEY_TYPES:
            raise UsageError(
                f"Key type {self.kty!r} cannot be imported into Azure.",
                f"Use one of {', '.join(KEY_TYPES)}.",
            )
        if self.kty == "EC-HSM":
            if self.size is not None:
                raise UsageError("An EC-HSM key takes a curve, not a size.", "Drop the size.")
            if self.curve not in EC_CURVES:
                raise UsageError(
                    f"Curve {self.curve!r} is not importable into Azure.",
                    f"Use one of {', '.join(EC_CURVES)}.",
                )
            return
        if self.curve is not None:
            raise UsageError(f"A {self.kty} key takes a size, not a curve.", "Drop the curve.")
        allowed = RSA_SIZES if self.kty == "RSA-HSM" else AES_SIZES
        if self.size not in allowed:
            raise UsageError(
                f"Size {self.size!r} is not importable for {self.kty}.",
                f"Use one of {', '.join(map(str, allowed))} bits.",
            )

    @property
    def family(self) -> str:
        """'RSA', 'EC' or 'AES': the key family inside the HSM."""
        return {"RSA-HSM": "RSA", "EC-HSM": "EC", "oct-HSM": "AES"}[self.kty]

    def describe(self) -> str:
        """Human form, for example 'RSA-HSM 3072' or 'EC-HSM P-256'."""
        return f"{self.kty} {self.curve or self.size}"

    def check_flavour(self, flavour: str) -> None:
        """Refuse a target the vault flavour cannot hold (oct-HSM lives only in Managed HSM)."""
        if flavour not in VAULT_FLAVOURS:
            raise UsageError(
                f"Vault flavour {flavour!r} is unknown.", f"Use one of {', '.join(VAULT_FLAVOURS)}."
            )
        if self.kty == "oct-HSM" and flavour != "managed-hsm":
            raise UsageError(
                "oct-HSM (AES) keys can be imported only into Azure Managed HSM.",
                "Target a Managed HSM, or choose an RSA-HSM or EC-HSM key.",
            )
