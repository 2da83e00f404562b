"""Tests for ceremony.plan: a good plan reads into typed sections; every refusal names its field."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.errors import PlanError
from ceremony.plan import load_plan, parse_plan
from ceremony.plan_problems import PlanProblems

ROOT = Path(__file__).resolve().parents[1]
FINGERPRINT = "ab" * 32

GOOD = f"""
[ceremony]
id = "test-ceremony-1"
purpose = "Testing the plan reader."

[vault]
url = "https://contoso.managedhsm.azure.net"
flavour = "managed-hsm"

[kek]
name = "byok-kek"
fingerprint = "{FINGERPRINT}"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token = "byok"

[[keys]]
name = "app-rsa"
type = "RSA-HSM"
size = 3072
key_ops = ["sign", "verify"]
tags = {{ owner = "app" }}
not_before = 2026-01-01T00:00:00Z
expires = 2099-01-01T00:00:00Z

[[keys]]
name = "app-ec"
type = "EC-HSM"
curve = "P-256"
key_ops = ["sign", "verify"]

[[keys]]
name = "app-aes"
type = "oct-HSM"
size = 256
key_ops = ["wrapKey", "unwrapKey"]
exportable = true
release_policy = "policy.json"

[[people]]
name = "ada"
role = "administrator"
public_key = "ada.pem"
signer = "file:ada.key"

[[people]]
name = "carol"
role = "custodian"
public_key = "carol.pem"
signer = "file:carol.key"

[[people]]
name = "wanda"
role = "witness"
public_key = "wanda.pem"
signer = "file:wanda.key"

[quorum]
custodian = 1
witness = 1
"""


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    """A directory with public keys and a release policy for the plans under test."""
    root = tmp_path_factory.mktemp("plan")
    for name in ("ada", "carol", "wanda"):
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (root / f"{name}.pem").write_bytes(pem)
    (root / "policy.json").write_text(json.dumps({"version": "1.0.0", "anyOf": []}))
    private = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (root / "private.pem").write_bytes(private)
    return root


def parse(text: str, plan_dir: Path):
    return parse_plan(text, path=plan_dir / "plan.toml")


def refused(text: str, plan_dir: Path, *needles: str) -> str:
    with pytest.raises(PlanError) as info:
        parse(text, plan_dir)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    return message


def test_good_plan_reads_into_typed_sections(plan_dir):
    plan = parse(GOOD, plan_dir)
    assert plan.ceremony.id == "test-ceremony-1"
    assert plan.vault.flavour == "managed-hsm"
    assert plan.kek.fingerprint == FINGERPRINT and plan.kek.version is None
    assert [k.name for k in plan.keys] == ["app-rsa", "app-ec", "app-aes"]
    assert plan.keys[0].spec.describe() == "RSA-HSM 3072"
    assert plan.keys[0].expires == dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    assert plan.keys[2].release_policy == {"version": "1.0.0", "anyOf": []}
    assert plan.quorum == {"custodian": 1, "witness": 1}
    assert plan.with_role("custodian")[0].pin_variable == "CEREMONY_PIN_CAROL"
    assert len(plan.sha256) == 64


def test_fingerprint_accepts_grouped_hex(plan_dir):
    grouped = " ".join(FINGERPRINT[i : i + 4].upper() for i in range(0, 64, 4))
    plan = parse(GOOD.replace(FINGERPRINT, grouped), plan_dir)
    assert plan.kek.fingerprint == FINGERPRINT


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ('purpose = "Testing', 'colour = "red"\npurpose = "Testing', ["ceremony.colour"]),
        ('token = "byok"', 'token = "byok"\nslot = 0', ["hsm.slot", "not a known field"]),
        ("size = 3072", 'size = "3072"', ["keys[0].size", "must be int"]),
        ('tags = { owner = "app" }', "tags = {}\nenabled = false", []),
        ('name = "app-ec"', 'name = "app_ec"', ["keys[1].name"]),
        ('name = "app-ec"', 'name = "app-rsa"', ["app-rsa", "twice"]),
        ('name = "app-ec"', 'name = "byok-kek"', ["twice"]),
        ('curve = "P-256"', 'curve = "P-192"', ["keys[1]", "P-192"]),
        ('key_ops = ["sign", "verify"]\n\n[[keys]]\nname = "app-aes"', None, []),
        ("exportable = true", "exportable = false", ["keys[2]", "release_policy", "exportable"]),
        ('release_policy = "policy.json"', "", ["keys[2]", "release policy"]),
        ('release_policy = "policy.json"', 'release_policy = "nope.json"', ["keys[2]", "nope"]),
        ("expires = 2099-01-01T00:00:00Z", "expires = 2001-01-01T00:00:00Z", ["keys[0].expires"]),
        ("expires = 2099-01-01T00:00:00Z", "expires = 2099-01-01T00:00:00", ["time zone"]),
        ('tags = { owner = "app" }', "tags = { owner = 1 }", ["keys[0].tags"]),
        ('flavour = "managed-hsm"', 'flavour = "cloud"', ["vault.flavour"]),
        ('url = "https://contoso', 'url = "http://contoso', ["vault.url"]),
        (f'fingerprint = "{FINGERPRINT}"', 'fingerprint = "abc"', ["kek.fingerprint"]),
        ('role = "witness"', 'role = "observer"', ["people[2]", "role"]),
        ('public_key = "ada.pem"', 'public_key = "private.pem"', ["people[0]", "private key"]),
        ('public_key = "ada.pem"', 'public_key = "policy.json"', ["people[0]", "PEM"]),
        (
            'public_key = "ada.pem"',
            'public_key = "missing.pem"',
            ["people[0].public_key", "missing.pem", "cannot be read"],
        ),
        ('name = "carol"', 'name = "ada"', ["twice"]),
        ('signer = "file:ada.key"', 'signer = "ada@hsm"', ["people[0].signer", "'ada@hsm'"]),
        ('name = "carol"', 'name = "Carol Smith"', ["people[1].name"]),
        ("custodian = 1", "custodian = 2", ["quorum.custodian", "lists 1"]),
        ("witness = 1", "witness = 1\nnotary = 1", ["quorum.notary"]),
        ("custodian = 1\nwitness = 1", "", ["quorum requires nobody"]),
        ('role = "witness"', 'role = "auditor"', ["no witness"]),
        ('role = "administrator"', 'role = "auditor"', ["no administrator"]),
        ("[quorum]", "[quorum]\n[extra]", ["field extra is not a known field"]),
        ("[ceremony]", "[ceremony", ["not valid TOML"]),
    ],
)
def test_refusals_name_the_field(plan_dir, old, new, needles):
    assert old in GOOD
    if new is None:  # drop the whole AES key table: nothing wrong, a control case
        parse(
            GOOD[: GOOD.index('[[keys]]\nname = "app-aes"')] + GOOD[GOOD.index("[[people]]") :],
            plan_dir,
        )
        return
    text = GOOD.replace(old, new, 1)
    if not needles:  # a harmless edit: still a good plan
        parse(text, plan_dir)
        return
    refused(text, plan_dir, *needles)


@pytest.mark.parametrize(
    "field",
    ["pin", "so_pin", "password", "userPin", "hsm-passphrase", "client_secret", "SOPIN"],
)
def test_secret_looking_fields_are_refused_anywhere(plan_dir, field):
    for section in ("[hsm]", "[[people]]", "[quorum]"):
        text = GOOD.replace(section, f'{section}\n{field} = "1234"', 1)
        message = refused(text, plan_dir, field, "looks like a secret")
        assert "never go in the plan" in message


def test_secret_inside_tags_is_refused(plan_dir):
    text = GOOD.replace('tags = { owner = "app" }', 'tags = { owner = "app", pin = "1" }')
    refused(text, plan_dir, "keys[0].tags.pin", "secret")


def test_aes_key_refused_in_keyvault_flavour(plan_dir):
    text = GOOD.replace("contoso.managedhsm.azure.net", "contoso.vault.azure.net").replace(
        'flavour = "managed-hsm"', 'flavour = "keyvault"'
    )
    refused(text, plan_dir, "app-aes", "Managed HSM")


def test_flavour_must_match_the_host(plan_dir):
    text = GOOD.replace("contoso.managedhsm.azure.net", "contoso.vault.azure.net")
    refused(text, plan_dir, "vault.flavour", "keyvault host")


def test_local_vault_needs_its_state_directory(plan_dir):
    text = GOOD.replace("https://contoso.managedhsm.azure.net", "https://127.0.0.1:8443")
    refused(text, plan_dir, "local_state")
    plan = parse(
        text.replace('flavour = "managed-hsm"', 'flavour = "managed-hsm"\nlocal_state = "v"'),
        plan_dir,
    )
    assert plan.vault.is_local and plan.vault.local_state == (plan_dir / "v").resolve()
    refused(
        GOOD.replace('flavour = "managed-hsm"', 'flavour = "managed-hsm"\nlocal_state = "v"'),
        plan_dir,
        "local_state",
    )


def test_wrong_key_ops_for_the_family(plan_dir):
    text = GOOD.replace(
        'curve = "P-256"\nkey_ops = ["sign", "verify"]', 'curve = "P-256"\nkey_ops = ["encrypt"]'
    )
    refused(text, plan_dir, "keys[1]", "key_ops")
    text = GOOD.replace('key_ops = ["wrapKey", "unwrapKey"]', 'key_ops = ["wrapKey", "wrapKey"]')
    refused(text, plan_dir, "keys[2]", "key_ops")


def test_missing_plan_file_is_one_clear_error(tmp_path):
    with pytest.raises(PlanError, match="Cannot read the plan"):
        load_plan(tmp_path / "absent.toml")


def test_documented_example_is_a_valid_plan(plan_dir, tmp_path):
    example = ROOT / "templates" / "plan.example.toml"
    shutil.copy(example, tmp_path / "plan.toml")
    (tmp_path / "people").mkdir()
    for name in ("ada", "carol", "chen", "wanda"):
        shutil.copy(plan_dir / "ada.pem", tmp_path / "people" / f"{name}.pub.pem")
    shutil.copy(plan_dir / "policy.json", tmp_path / "release-policy.json")
    plan = load_plan(tmp_path / "plan.toml")
    assert {k.spec.family for k in plan.keys} == {"RSA", "EC", "AES"}
    assert plan.quorum == {"administrator": 1, "custodian": 2, "witness": 1}


def test_one_plan_check_names_three_independent_mistakes(plan_dir):
    """Three typos in three sections: one `ceremony plan check` names them all."""
    from tests.workbook_support import ceremony

    text = (
        GOOD.replace("size = 3072", 'size = "3072"')
        .replace('token = "byok"', 'token = "byok"\nslot = 0')
        .replace('role = "witness"', 'role = "witnes"')
    )
    (plan_dir / "three.toml").write_text(text)
    done = ceremony("plan", "check", str(plan_dir / "three.toml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].endswith("three.toml has 3 problems:")
    assert lines[1:4] == [
        "  - Plan field hsm.slot is not a known field. Remove or correct 'slot'.",
        "  - Plan field keys[0].size must be int, not str. Fix its type.",
        "  - Plan field people[2].role is 'witnes'. "
        "Use one of administrator, custodian, witness, auditor.",
    ]
    assert lines[4] == "Correct each one, then check the plan again."


def test_plan_problems_come_with_their_places_in_one_error(plan_dir):
    text = GOOD.replace('flavour = "managed-hsm"', 'flavor = "managed-hsm"').replace(
        "[hsm]", '[hsm]\nso_pin = "1"'
    )
    with pytest.raises(PlanProblems) as info:
        parse(text, plan_dir)
    assert [(p.where, p.text) for p in info.value.problems] == [
        ("hsm.so_pin", "looks like a secret"),
        ("vault.flavour", "is missing"),
        ("vault.flavor", "is not a known field"),
    ]


def test_the_wrap_path_is_auto_unless_the_plan_chooses(plan_dir):
    assert parse(GOOD, plan_dir).hsm.wrap == "auto"
    chosen = GOOD.replace('token = "byok"', 'token = "byok"\nwrap = "native"')
    assert parse(chosen, plan_dir).hsm.wrap == "native"
    untrusted = 'token = "byok"\nwrap = "two-step"\nwrap_with_trusted = false'
    assert parse(GOOD.replace('token = "byok"', untrusted), plan_dir).hsm.wrap == "two-step"


def test_an_unknown_wrap_path_is_named(plan_dir):
    text = GOOD.replace('token = "byok"', 'token = "byok"\nwrap = "fast"')
    refused(text, plan_dir, "hsm.wrap", "'auto', 'native' or 'two-step'")


def test_two_step_with_wrap_with_trusted_is_refused_in_one_sentence(plan_dir):
    """The two steps wrap under an ephemeral AES key the security officer cannot have trusted."""
    text = GOOD.replace('token = "byok"', 'token = "byok"\nwrap = "two-step"')
    message = refused(text, plan_dir, "Plan field hsm.wrap is 'two-step'", "wrap_with_trusted")
    assert "\n" not in message
