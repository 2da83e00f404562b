"""steps.preflight: phase 00 — record the tools, host, clock, HSM and roster before anything else.

Copies the reviewed plan and everyone's public keys into the workspace as evidence. It changes
nothing on the HSM or in the vault; the wrap self-test uses session objects only.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from urllib.parse import urlsplit

from ceremony.airgap import network_signs, reachable
from ceremony.canonical import canonical_json, sha256_hex
from ceremony.checkpoint import PLAN_ITEM, CheckpointItem, signing_key_item
from ceremony.errors import RefusedError, UsageError
from ceremony.evidence.roster import planned_key_path
from ceremony.fingerprint import fingerprint_public_key
from ceremony.phases import OFFLINE, ONLINE
from ceremony.plan import Plan
from ceremony.software import Software, running_software
from ceremony.steps.context import Context, StepResult, step
from ceremony.workspace import host_name
from ceremony.wrap_paths import PLAN_CHOICE

PREFLIGHT_RECORDED = "preflight-recorded"
DISTRIBUTIONS = (
    "byok-ceremony",
    "cryptography",
    "python-pkcs11",
    "azure-keyvault-keys",
    "azure-identity",
    "securesystemslib",
    "papermill",
    "nbclient",
    "ipykernel",
)


def tool_versions(software: Software) -> dict[str, str]:
    """Versions of Python and of every library the ceremony's result depends on."""
    versions = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        versions[name] = software.distributions.get(name, "not installed")
    return versions


@step
def preflight(ctx: Context, side: str = "auto") -> StepResult:
    """Phase 00: what this machine is, which side of the air gap, what the HSM is, who is here.

    `side` is the side this run is on ("online", "offline"; "auto": offline where the plan's
    PKCS#11 module is present). The online side never touches the module, a token or a PIN."""
    from ceremony.evidence.records import PreflightRecord

    plan = ctx.plan
    side = _side(plan, side)
    _copy_plan(ctx)
    hsm, self_test, warnings, facts = {}, None, [], []
    if side == OFFLINE:
        from ceremony.hsm import require_conformant

        with ctx.hsm() as session:
            info = session.describe()
            test = session.self_test(plan.hsm.wrap, PLAN_CHOICE)
        hsm, self_test = info.to_dict(), test.to_dict()
        warning = require_conformant(test, ctx.allowances)
        warnings += [warning] if warning else []
        warnings += _wrap_protection(ctx, test.native_rsa_aes)
        token = info.token
        facts += [
            ("HSM token", f"{token.label} — {token.manufacturer} {token.model}, serial "
             f"{token.serial}, firmware {token.firmware_version}" if token else "?"),
            ("HSM self-test", test.summary()),
        ]  # fmt: skip
        signs = network_signs(plan)
        network = "; ".join(signs) if signs else "no sign of a network"
        facts.append(("network", network))
    else:
        facts.append(("HSM", "not touched: this is the online side"))
        network = "reaches the vault" if _vault_reachable(plan) else "cannot reach the vault"
        facts.append(("vault reachable", network))
    now = dt.datetime.now(dt.UTC)
    host = {
        "hostname": host_name(),
        "platform": platform.platform(),
        "clock_utc": now.isoformat(timespec="seconds"),
        "side": side,
        "network": network,
    }
    software = running_software()
    warnings += software.warnings(rehearsal=ctx.rehearsal)
    record = PreflightRecord(
        tool_versions(software), host, hsm, self_test, ctx.rehearsal, warnings, software.to_dict()
    )
    name = "preflight.json" if not ctx.workspace.exists("preflight.json") else None
    name = name or f"preflight-{host_name()}-{now:%Y%m%dT%H%M%SZ}.json"
    ctx.write(name, record.to_json())
    ctx.record(
        PREFLIGHT_RECORDED, {"file": name, "sha256": sha256_hex(record.to_json()), "side": side}
    )
    items = [CheckpointItem(PLAN_ITEM, plan.sha256)]
    if software.digest:
        what = (
            "offline bundle (SHA-256 of its SHA256SUMS)" if software.kind == "bundle" else "wheel"
        )
        label = f"software: byok-ceremony {software.version}, {what}"
        items.append(CheckpointItem(label, software.digest))
    for person in plan.people:
        fp = fingerprint_public_key(person.public_key_pem)
        items.append(CheckpointItem(signing_key_item(person.name, person.role), fp.hex))
    facts = [
        ("ceremony", f"{plan.ceremony.id}: {plan.ceremony.purpose}"),
        ("mode", ctx.mode),
        ("host", f"{host['hostname']} ({host['platform']})"),
        ("clock (UTC)", host["clock_utc"]),
        ("software", software.summary()),
        ("vault", f"{plan.vault.url} ({plan.vault.flavour})"),
        ("keys", ", ".join(f"{k.name} ({k.spec.describe()})" for k in plan.keys)),
        ("quorum", ", ".join(f"{n} {role}" for role, n in plan.quorum.items())),
        *facts,
    ]
    return StepResult(
        f"Preflight on {host['hostname']}", tuple(facts), tuple(items), tuple(warnings)
    )


def _side(plan: Plan, side: str) -> str:
    if side == "auto":
        return OFFLINE if Path(plan.hsm.module).exists() else ONLINE
    if side not in (ONLINE, OFFLINE):
        raise UsageError(f"Side {side!r} is unknown.", "Use side = 'online' or 'offline'.")
    return side


def _vault_reachable(plan: Plan) -> bool:
    parts = urlsplit(plan.vault.url)
    return reachable(parts.hostname or "", parts.port or 443)


def _wrap_protection(ctx: Context, native: bool) -> list[str]:
    """Whether the HSM can hold the line the plan asks for (target keys wrappable only under the
    trusted KEK needs the native CKM_RSA_AES_KEY_WRAP); refuses when it cannot, and returns the
    warning to record when the plan accepted going without."""
    from ceremony.steps.wrap import UNPROTECTED

    if not ctx.plan.hsm.wrap_with_trusted:
        return [UNPROTECTED]
    if not native:
        raise RefusedError(
            "The plan asks that the ceremony keys be wrappable only under the KEK the security "
            "officer trusts (CKA_WRAP_WITH_TRUSTED), but this token has no native "
            "CKM_RSA_AES_KEY_WRAP, without which it cannot.",
            "Use an HSM that offers the mechanism (SoftHSM2 2.7 for a rehearsal), or accept the "
            "weaker protection explicitly in the reviewed plan: [hsm] wrap_with_trusted = false.",
        )
    return []


def _copy_plan(ctx: Context) -> None:
    """The plan, public keys and release policies travel with the workspace into the evidence."""
    ws, plan = ctx.workspace, ctx.plan
    if ws.exists("plan.toml"):
        return  # the first side's preflight copied them; the binding pins the same plan
    ctx.write("plan.toml", plan.path.read_bytes())
    for person in plan.people:
        ctx.write(planned_key_path(person.name), person.public_key_pem.encode())
    for key in plan.keys:
        if key.release_policy is not None:
            ctx.write(f"policies/{key.name}.json", canonical_json(key.release_policy) + b"\n")
