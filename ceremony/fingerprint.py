"""fingerprint: SHA-256 digests in the forms people compare aloud, on paper and with a camera.

Turns bytes into hex, grouped hex, PGP words and QR codes, and parses those forms back.
Never sees secrets: it only fingerprints public keys and evidence files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import qrcode
import qrcode.constants

from ceremony.errors import UsageError
from ceremony.pgp_words import EVEN_WORDS, ODD_WORDS
from ceremony.publickey import load_any_public_key, spki_der

_WORD_VALUES = (
    {word.lower(): value for value, word in enumerate(EVEN_WORDS)},
    {word.lower(): value for value, word in enumerate(ODD_WORDS)},
)
_SEPARATORS = re.compile(r"[\s:\-]")
# Upper half block, lower half block, full block: two QR rows per terminal line.
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


@dataclass(frozen=True)
class Fingerprint:
    """A SHA-256 digest, comparable by witnesses as hex, words or QR code."""

    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != 32:
            raise UsageError(
                f"A SHA-256 fingerprint has 32 bytes, not {len(self.digest)}.",
                "Give the full 64-digit hex fingerprint.",
            )

    @classmethod
    def of(cls, data: bytes) -> Fingerprint:
        """Fingerprint of `data` (SHA-256)."""
        return cls(hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Read a fingerprint written as hex (any case, spaces/colons allowed, optional
        "sha256:" prefix) or as the 32 PGP words, so an out-of-band value can be typed in."""
        cleaned = text.strip()
        if cleaned.lower().startswith(("sha256:", "sha256 ")):
            cleaned = cleaned[7:]
        words = cleaned.split()
        if len(words) == 32 and not re.fullmatch(r"[0-9a-fA-F\s:\-]+", cleaned):
            return cls(words_to_bytes(words))
        compact = _SEPARATORS.sub("", cleaned)
        if not re.fullmatch(r"[0-9a-fA-F]{64}", compact):
            raise UsageError(
                f"'{text}' is not a SHA-256 fingerprint.",
                "Give 64 hex digits (spaces and colons allowed) or the 32 PGP words.",
            )
        return cls(bytes.fromhex(compact))

    @property
    def hex(self) -> str:
        """Lower-case hex, 64 digits."""
        return self.digest.hex()

    @property
    def short(self) -> str:
        """Upper-case hex in groups of four, the form read aloud digit by digit."""
        text = self.hex.upper()
        return " ".join(text[i : i + 4] for i in range(0, len(text), 4))

    @property
    def word_list(self) -> tuple[str, ...]:
        """The PGP words, one per byte."""
        return bytes_to_words(self.digest)

    @property
    def words(self) -> str:
        """The PGP words joined by spaces: what a witness reads aloud."""
        return " ".join(self.word_list)

    @property
    def uri(self) -> str:
        """The text the QR code carries: "sha256:" and the hex digest."""
        return f"sha256:{self.hex}"

    def matches(self, other: Fingerprint | str) -> bool:
        """True when `other` (a Fingerprint or any form `parse` reads) is this fingerprint."""
        if isinstance(other, str):
            other = Fingerprint.parse(other)
        return other.digest == self.digest

    def qr_terminal(self, *, ascii_only: bool = False, invert: bool = False) -> str:
        """The QR code as text for a terminal or notebook output, with a quiet zone.

        Half-block characters pack two module rows per line; `ascii_only` uses "##" per dark
        module for terminals without them; `invert` suits light-on-dark terminals."""
        matrix = [[cell != invert for cell in row] for row in _qr_matrix(self.uri)]
        if ascii_only:
            return "\n".join("".join("##" if c else "  " for c in row) for row in matrix) + "\n"
        if len(matrix) % 2:
            matrix.append([invert] * len(matrix[0]))
        lines = []
        for top, bottom in zip(matrix[0::2], matrix[1::2], strict=True):
            lines.append("".join(_HALF_BLOCKS[(a, b)] for a, b in zip(top, bottom, strict=True)))
        return "\n".join(lines) + "\n"

    def qr_svg(self, *, module_mm: float = 1.0) -> str:
        """The QR code as an inline SVG element (no XML declaration), one path, crisp edges."""
        matrix = _qr_matrix(self.uri)
        size = len(matrix)
        runs = []
        for y, row in enumerate(matrix):
            x = 0
            while x < size:
                if row[x]:
                    start = x
                    while x < size and row[x]:
                        x += 1
                    runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
                else:
                    x += 1
        side = f"{size * module_mm:g}mm"
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" '
            f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges" role="img" '
            f'aria-label="{self.uri}"><rect width="{size}" height="{size}" fill="#fff"/>'
            f'<path fill="#000" d="{"".join(runs)}"/></svg>'
        )

    def to_dict(self) -> dict[str, str]:
        """JSON-ready forms for records and reports."""
        return {"sha256": self.hex, "words": self.words}

    def __str__(self) -> str:
        return self.hex


def bytes_to_words(data: bytes) -> tuple[str, ...]:
    """PGP words for `data`: even positions from the two-syllable list, odd from the three."""
    return tuple((ODD_WORDS if i % 2 else EVEN_WORDS)[b] for i, b in enumerate(data))


def words_to_bytes(words: list[str] | tuple[str, ...]) -> bytes:
    """Inverse of bytes_to_words; a word from the wrong list means a word was skipped or doubled."""
    out = bytearray()
    for position, word in enumerate(words):
        table = _WORD_VALUES[position % 2]
        value = table.get(word.lower())
        if value is None:
            other = "odd" if position % 2 == 0 else "even"
            hint = (
                f" (it belongs to the {other} list: a word was skipped or repeated)"
                if word.lower() in _WORD_VALUES[(position + 1) % 2]
                else ""
            )
            raise UsageError(
                f"Word {position + 1}, '{word}', is not a PGP word for that position{hint}.",
                "Read the words again from the source and retype them in order.",
            )
        out.append(value)
    return bytes(out)


def public_key_der(pem_or_der: bytes | str) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key given as PEM or DER (SPKI).

    Re-encodes through pyca/cryptography so that equal keys give equal bytes whatever the
    input form; refuses anything that is not a public key."""
    return spki_der(
        load_any_public_key(
            pem_or_der,
            "data",
            "Give the public key file (for example from `az keyvault key download`).",
        )
    )


def fingerprint_public_key(pem_or_der: bytes | str) -> Fingerprint:
    """SHA-256 of the DER SubjectPublicKeyInfo: the same value `openssl pkey -pubin -outform
    DER | sha256sum` gives, whatever form the key came in."""
    return Fingerprint.of(public_key_der(pem_or_der))


def _qr_matrix(text: str) -> list[list[bool]]:
    """QR modules (with a 4-module quiet zone), medium error correction."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]
