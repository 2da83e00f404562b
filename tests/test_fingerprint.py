"""Fingerprints: published PGP word vectors, openssl cross-checks, QR rendering, parsing."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ceremony.errors import UsageError
from ceremony.fingerprint import (
    Fingerprint,
    _qr_matrix,
    bytes_to_words,
    fingerprint_public_key,
    words_to_bytes,
)
from ceremony.pgp_words import EVEN_WORDS, ODD_WORDS

# The example printed with the PGP word list's description (Wikipedia, "PGP word list").
PUBLISHED_HEX = "E582 94F2 E9A2 2748 6E8B 061B 31CC 528F D7FA 3F19"
PUBLISHED_WORDS = (
    "topmost Istanbul Pluto vagabond treadmill Pacific brackish dictator goldfish Medusa "
    "afflict bravado chatter revolver Dupont midsummer stopwatch whimsical cowbell bottomless"
)


def test_word_lists_are_complete_and_distinct() -> None:
    assert len(EVEN_WORDS) == len(ODD_WORDS) == 256
    assert len({w.lower() for w in EVEN_WORDS + ODD_WORDS}) == 512
    assert (EVEN_WORDS[0], EVEN_WORDS[255], ODD_WORDS[0], ODD_WORDS[255]) == (
        "aardvark",
        "Zulu",
        "adroitness",
        "Yucatan",
    )


def test_word_list_digest_is_the_reviewed_one() -> None:
    # Locks the lists after a line-by-line comparison with the published table.
    joined = " ".join(EVEN_WORDS + ODD_WORDS).encode()
    assert (
        hashlib.sha256(joined).hexdigest()
        == "3e090850023f09a3bff58dbc9926ee0840dd829fa8198af8ceffd1b2280a7096"
    )


def test_published_vector() -> None:
    data = bytes.fromhex(PUBLISHED_HEX.replace(" ", ""))
    assert " ".join(bytes_to_words(data)) == PUBLISHED_WORDS
    assert words_to_bytes(PUBLISHED_WORDS.split()) == data


def test_position_selects_the_list() -> None:
    assert bytes_to_words(b"\x00\x00\xff\xff") == ("aardvark", "adroitness", "Zulu", "Yucatan")


def test_fingerprint_forms() -> None:
    fp = Fingerprint.of(b"abc")
    expected = hashlib.sha256(b"abc").hexdigest()
    assert fp.hex == expected == str(fp)
    assert fp.short.replace(" ", "").lower() == expected
    assert len(fp.short.split()) == 16
    assert len(fp.word_list) == 32 and fp.words == " ".join(fp.word_list)
    assert fp.uri == f"sha256:{expected}"
    assert fp.to_dict() == {"sha256": expected, "words": fp.words}


@pytest.mark.parametrize(
    "form",
    [
        lambda fp: fp.hex,
        lambda fp: fp.hex.upper(),
        lambda fp: fp.short,
        lambda fp: ":".join(fp.hex[i : i + 2] for i in range(0, 64, 2)),
        lambda fp: fp.uri,
        lambda fp: fp.words,
        lambda fp: fp.words.upper(),
    ],
)
def test_parse_round_trip(form) -> None:
    fp = Fingerprint.of(b"round trip")
    assert Fingerprint.parse(form(fp)) == fp
    assert fp.matches(form(fp))
    assert not Fingerprint.of(b"other").matches(form(fp))


def test_parse_refuses_garbage() -> None:
    with pytest.raises(UsageError, match="not a SHA-256 fingerprint"):
        Fingerprint.parse("abc123")
    with pytest.raises(UsageError, match="32 bytes"):
        Fingerprint(b"\x00" * 20)


def test_skipped_word_is_named() -> None:
    words = Fingerprint.of(b"x").word_list
    shifted = [*words[1:], words[0]]
    with pytest.raises(UsageError, match=r"Word 1, .* odd list"):
        words_to_bytes(shifted)


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        rsa.generate_private_key(65537, 2048).public_key(),
    ],
    ids=["ec", "rsa"],
)
def test_public_key_fingerprint_matches_openssl(key, tmp_path) -> None:
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    openssl_der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(path), "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    expected = hashlib.sha256(openssl_der).hexdigest()
    assert fingerprint_public_key(pem).hex == expected
    assert fingerprint_public_key(der).hex == expected
    assert fingerprint_public_key(pem.decode()).hex == expected


def test_public_key_fingerprint_refuses_private_key() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(UsageError, match="not a public key"):
        fingerprint_public_key(pem)


def test_qr_svg_draws_every_module() -> None:
    fp = Fingerprint.of(b"qr")
    matrix = _qr_matrix(fp.uri)
    svg = fp.qr_svg()
    assert svg.startswith("<svg") and "<?xml" not in svg
    drawn = [[False] * len(matrix) for _ in matrix]
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1", svg):
        for dx in range(int(width)):
            drawn[int(y)][int(x) + dx] = True
    assert drawn == matrix
    assert any(any(row) for row in matrix)


def test_qr_terminal_draws_every_module() -> None:
    fp = Fingerprint.of(b"qr")
    matrix = _qr_matrix(fp.uri)
    lines = fp.qr_terminal().splitlines()
    assert len(lines) == (len(matrix) + 1) // 2
    top = {"▀": True, "█": True, "▄": False, " ": False}
    bottom = {"▄": True, "█": True, "▀": False, " ": False}
    for i, line in enumerate(lines):
        assert [top[c] for c in line] == matrix[2 * i]
        if 2 * i + 1 < len(matrix):
            assert [bottom[c] for c in line] == matrix[2 * i + 1]
    ascii_lines = fp.qr_terminal(ascii_only=True).splitlines()
    assert [[line[j] == "#" for j in range(0, len(line), 2)] for line in ascii_lines] == matrix
    inverted = fp.qr_terminal(invert=True, ascii_only=True).splitlines()
    assert [[line[j] != "#" for j in range(0, len(line), 2)] for line in inverted] == matrix


def test_qr_matrix_has_finder_patterns() -> None:
    # Independent of the rendering: the 7x7 finder pattern sits inside the 4-module quiet zone.
    matrix = _qr_matrix(Fingerprint.of(b"qr").uri)
    finder = [row[4:11] for row in matrix[4:11]]
    assert finder[0] == [True] * 7 and finder[3] == [True, False, True, True, True, False, True]
    assert not any(matrix[0]) and not any(matrix[3])
