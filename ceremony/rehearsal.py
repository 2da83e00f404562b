"""rehearsal: a whole ceremony on one machine, its two sides apart — SoftHSM2 (or another
PKCS#11 module), the local vault, a sample plan, drills.

Sets up throwaway tokens (or checks an existing one) and a local Managed HSM in the output
directory, runs the phases on the online and offline sides in turn (rehearsal_sides) with
automatic (and so marked) confirmations, and verifies the archive. PINs it generates for the
throwaway tokens are kept in one 0600 file beside the workspace (never in it, so never sealed), so
that any rehearsal can be resumed; PINs given in the environment are never written anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ceremony.errors import CeremonyError, HsmError, RefusedError, UsageError
from ceremony.files import write_new
from ceremony.phases import OFFLINE, ONLINE, Phase
from ceremony.pins import SO_PIN, USER_PIN
from ceremony.plan import load_plan
from ceremony.rehearsal_sides import (
    ONLINE_NOTE,
    Leg,
    carry,
    left_on_token,
    legs,
    newest,
    paper_record,
    ran_strict,
)
from ceremony.rehearsal_tokens import CeremonyToken
from ceremony.resources import templates_dir
from ceremony.workspace import Workspace

HSM_TOKEN = "byok-rehearsal"
KEK_NAME = "byok-kek"
PIN_FILE = "rehearsal-pins.json"  # beside the workspace: generated PINs of the throwaway tokens
PEOPLE = (
    ("ada", "administrator"),
    ("carol", "custodian"),
    ("chen", "custodian"),
    ("wanda", "witness"),
)
FILE_SIGNER = "chen"  # signs with a key file beside the plan, as chen in the example plan does


@dataclass(frozen=True)
class Drill:
    """A fault a custodian must catch: where it is injected, where the ceremony must stop, why."""

    name: str
    stops_at: str
    lesson: str
    vault_faults: tuple[str, ...] = ()
    wrong_fingerprint: bool = False
    tamper_after: str | None = None
    absent_signer: str | None = None


DRILLS = {
    d.name: d
    for d in (
        Drill(
            "kek-fingerprint",
            "01",
            "The plan's KEK fingerprint differs from the KEK the vault offers, as when someone "
            "substitutes their own KEK. Phase 01 refused before anything was wrapped. In a real "
            "ceremony: stop, call the vault owner on a number you already know, and compare the "
            "fingerprint word by word.",
            wrong_fingerprint=True,
        ),
        Drill(
            "tampered-byok",
            "04",
            "A .byok package changed after the witnesses confirmed it at checkpoint 03, as when "
            "the transfer medium is tampered with across the air gap. Phase 04 refused to import "
            "it. In a real ceremony: stop, keep the medium as evidence, and wrap again in a new "
            "ceremony.",
            tamper_after="03",
        ),
        Drill(
            "cloud-outage",
            "04",
            "The vault answered 503 (service unavailable) to every import. Phase 04 stopped "
            "without half an import being taken for a whole one. In a real ceremony: wait, then "
            "rerun `ceremony run`; it resumes and never imports a key twice.",
            vault_faults=("import:503:1000",),
        ),
        Drill(
            "missing-signature",
            "05",
            "The witness did not sign, so the plan's quorum was not met and the evidence was not "
            "sealed. In a real ceremony: bring the missing witness (and their token) and rerun "
            "phase 05; nothing else is repeated.",
            absent_signer="wanda",
        ),
    )
}


@dataclass(frozen=True)
class RehearsalResult:
    """Where the rehearsal left its evidence, and whether the archive verified."""

    root: Path
    workspace: Path
    archive: Path
    report: Path
    verified: bool


def person_variable(name: str) -> str:
    return "CEREMONY_PIN_" + name.upper()


def prepare_out(out: Path) -> Path:
    """OUT, new or empty, made private: a rehearsal or practice never writes over an earlier one."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise UsageError(
            f"{out} exists and is not empty; a rehearsal never overwrites an earlier one.",
            "Give a new directory (or remove the old rehearsal).",
        )
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    return out


def render_plan(values: dict[str, Any]) -> str:
    """The sample plan from templates/rehearsal-plan.toml.j2."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template("rehearsal-plan.toml.j2").render(**values)


def _tamper(ws: Workspace) -> None:
    """Change one character of the EC key's .byok ciphertext (the drill plays the attacker)."""
    path = next(ws.path("keys").glob("*-ec.byok"))
    data = bytearray(path.read_bytes())
    at = data.index(b'"ciphertext":"') + len(b'"ciphertext":"') + 40
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    path.write_bytes(bytes(data))


def _pin_variables() -> list[str]:
    return [USER_PIN, SO_PIN, *(person_variable(n) for n, _ in PEOPLE)]


def new_pins(root: Path, existing_token: bool) -> dict[str, str]:
    """Every PIN of the rehearsal. One not given in the environment is generated and kept in
    PIN_FILE (0600, outside the workspace), so that `--resume` can carry on with the same
    tokens; an existing token's PINs are never made up."""
    given = {v: os.environ[v] for v in _pin_variables() if os.environ.get(v)}
    if existing_token and USER_PIN not in given:
        raise UsageError(
            "--token uses an existing token, and its user PIN is not in CEREMONY_PIN.",
            "Set CEREMONY_PIN (and CEREMONY_SO_PIN, for the security officer's step) and rerun.",
        )
    wanted = [USER_PIN, SO_PIN] if not existing_token else []
    wanted += [person_variable(n) for n, _ in PEOPLE]
    generated = {v: secrets.token_hex(12) for v in wanted if v not in given}
    if generated:
        text = json.dumps(generated, indent=2) + "\n"
        write_new(root / PIN_FILE, text.encode(), mode=0o600)
    return {**generated, **given}


def _resumed_pins(root: Path) -> dict[str, str]:
    """The PINs of the first run: from the environment, else from the rehearsal's PIN_FILE."""
    if not (root / "plan.toml").exists():
        raise UsageError(f"{root} holds no rehearsal to resume.", "Start one with --out DIR.")
    kept: dict[str, str] = {}
    if (root / PIN_FILE).exists():
        kept = json.loads((root / PIN_FILE).read_text(encoding="utf-8"))
    pins = {v: os.environ.get(v) or kept.get(v, "") for v in _pin_variables()}
    missing = [v for v, pin in pins.items() if not pin and v != SO_PIN]
    if missing:
        raise UsageError(
            f"Cannot resume: {', '.join(missing)} not set, and {root / PIN_FILE} does not hold "
            "them (PINs given in the environment are never stored).",
            "Set them as they were when the rehearsal started, then resume.",
        )
    return {v: pin for v, pin in pins.items() if pin}


@dataclass(frozen=True)
class Setup:
    """Where each side's tokens are — the ceremony HSM (offline) and the signers' (phase 05) —
    and the wrap path the plan is to ask for."""

    module: str
    token: str
    hsm_conf: Path | None  # SoftHSM2's configuration for the ceremony token, if SoftHSM2
    signers_conf: Path
    wrap: str = "auto"

    def trusted_wrap(self, native: bool) -> bool:
        """Keys wrappable only under the trusted KEK: where the token has the native mechanism
        and the plan does not ask for the two steps, which cannot wrap such keys."""
        return native and self.wrap != "two-step"


def _setup(
    root: Path, module: str | None, token: str | None, user_conf: str | None, wrap: str = "auto"
) -> Setup:
    """The SoftHSM2 directories: the rehearsal's own for a throwaway ceremony token, or the
    user's configuration for an existing one; always a separate one for the signers."""
    from ceremony.softhsm import SoftHsm, find_module

    signers = SoftHsm(root / "signers", module if module and not token else None)
    if token:
        if module is None:
            raise UsageError(
                "--token needs --module: the PKCS#11 library of that token.", "Add --module LIB."
            )
        conf = Path(user_conf) if user_conf else None
        return Setup(module, token, conf, signers.conf_path, wrap)
    hsm = SoftHsm(root / "softhsm", module or find_module())
    return Setup(hsm.module_path, HSM_TOKEN, hsm.conf_path, signers.conf_path, wrap)


def _provision(
    root: Path, setup: Setup, existing: bool, pins: dict[str, str], say: Callable[[str], None]
) -> tuple[list[dict], CeremonyToken]:
    """Each side's tokens, made (or the existing one checked) in two child processes at once:
    the ceremony token, and one signing token per person. Returns the people and the token."""
    from ceremony.rehearsal_tokens import (
        check_ceremony_token,
        make_ceremony_token,
        make_signing_tokens,
    )
    from ceremony.signers import create_file_signing_key

    signers_module = _signers_module(setup)
    token_pins = {n: pins[person_variable(n)] for n, _ in PEOPLE if n != FILE_SIGNER}
    with ThreadPoolExecutor(2) as pool:
        if existing:
            ceremony_token = pool.submit(
                check_ceremony_token, setup.module, setup.hsm_conf, setup.token, pins[USER_PIN]
            )
        else:
            ceremony_token = pool.submit(
                make_ceremony_token,
                setup.module,
                setup.hsm_conf,
                setup.token,
                pins[USER_PIN],
                pins[SO_PIN],
            )
        signing = pool.submit(make_signing_tokens, signers_module, setup.signers_conf, token_pins)
        found, made = ceremony_token.result(), signing.result()
    people = []
    (root / "people").mkdir(mode=0o700)
    for name, role in PEOPLE:
        pin = pins[person_variable(name)]
        if name == FILE_SIGNER:  # its PIN is the key file's passphrase
            _, public_pem = create_file_signing_key(root / "people" / f"{name}.key", pin)
            reference = f"file:people/{name}.key"  # relative to the plan, as a plan writes it
        else:
            reference, public_pem = made[name]
        (root / "people" / f"{name}.pub.pem").write_text(public_pem)
        person = {"name": name, "role": role, "public_key": f"people/{name}.pub.pem"}
        people.append({**person, "signer": reference})
    how = "existing token" if existing else "throwaway token"
    say(
        f"Offline side: {how} {found.description} ({setup.module}). Online side: a signing "
        f"token each for {', '.join(token_pins)} in a SoftHSM2 directory of their own; "
        f"{FILE_SIGNER} signs with a passphrase-protected key file"
    )
    return people, found


def _signers_module(setup: Setup) -> str:
    """The signers' tokens are SoftHSM2's, and never the ceremony module's path: the SoftHSM2
    installed on this machine, else the rehearsal's own module when it is SoftHSM2."""
    from ceremony.softhsm import find_module

    try:
        return find_module()
    except HsmError:
        if setup.token != HSM_TOKEN:
            raise
        return setup.module


def _side_envs(setup: Setup, pins: dict[str, str], absent: str | None) -> dict[str, dict]:
    """What each side's kernels get: the online side nothing of the HSM; the offline side the
    ceremony token's configuration and PINs; phase 05 the signers' directory and PINs."""
    hsm = {"SOFTHSM2_CONF": str(setup.hsm_conf)} if setup.hsm_conf else {}
    people = {person_variable(n): pins[person_variable(n)] for n, _ in PEOPLE if n != absent}
    return {
        ONLINE: {},
        OFFLINE: {**hsm, **{v: pins[v] for v in (USER_PIN, SO_PIN) if v in pins}},
        "signers": {"SOFTHSM2_CONF": str(setup.signers_conf), **people},
    }


def rehearse(
    out: str | Path,
    drill: str | None = None,
    *,
    resume: bool = False,
    module: str | None = None,
    token: str | None = None,
    strict: bool = False,
    wrap: str = "auto",
    stream: TextIO = sys.stdout,
) -> RehearsalResult:
    """Run the whole sample ceremony in `out`, its two sides apart; with a drill, stop where the
    drill says it must.

    `resume` continues a rehearsal that was interrupted, with the PINs of its first run.
    `module` is the PKCS#11 module to rehearse on (default: the installed SoftHSM2); `token` an
    existing token on it to use instead of a throwaway one. `strict`: no rehearsal allowances
    on the HSM (a deviating wrap is refused) nor on the local vault. `wrap`: the wrap path the
    plan asks for (auto, native, two-step)."""
    chosen = DRILLS.get(drill) if drill else None
    if drill and chosen is None:
        raise UsageError(f"There is no drill {drill!r}.", f"Choose one of {', '.join(DRILLS)}.")
    root = Path(out).resolve() if resume else prepare_out(Path(out))

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    say(f"Rehearsal in {root}" + (f" — drill {chosen.name}" if chosen else ""))
    # The Azure SDK is imported by both the vault client and securesystemslib's signers, which
    # the set-up below uses from two threads; importing a package from two threads at once can
    # meet it half-initialised, so both are imported here, before any thread starts.
    import ceremony.signers
    import ceremony.vault  # noqa: F401

    # Import the notebook machinery while the tokens and the vault are set up.
    threading.Thread(target=_load_notebook_machinery, daemon=True).start()
    from ceremony.kernel import POOL
    from ceremony.netns import offline_air_gap

    # The user's SoftHSM2 configuration reaches only the offline side (and only for --token):
    # online kernels, which inherit this process's environment, must see no HSM configuration.
    user_conf = os.environ.pop("SOFTHSM2_CONF", None)
    try:
        if resume:
            pins = _resumed_pins(root)
            plan = load_plan(root / "plan.toml")
            token = None if plan.hsm.token == HSM_TOKEN else plan.hsm.token
            setup = _setup(root, plan.hsm.module, token, user_conf)
        else:
            pins = new_pins(root, existing_token=bool(token))
            setup = _setup(root, module, token, user_conf, wrap)
            (root / "workspace").mkdir(mode=0o700)
        absent = chosen.absent_signer if chosen else None
        envs = _side_envs(setup, pins, absent)
        online, offline = root / "workspace", root / "offline" / "workspace"
        # A resumed rehearsal stays as strict as it began (its phases recorded their mode).
        strict = strict or (resume and ran_strict(newest([online, offline])))
        sides = legs(online, offline, envs, offline_air_gap(), strict_vault=strict)
        if not resume:
            # Every phase's kernel starts one phase ahead, across the sides; the first one now,
            # while the tokens and the vault are set up.
            POOL.prepare_batches([leg.kernels() for leg in sides])
        return _rehearse(root, setup, chosen, pins, sides, resume, strict, say, stream)
    except CeremonyError:
        if not resume and not (root / "plan.toml").exists():
            # Refused while setting up (a wrong module, token or PIN): nothing was done in the
            # new directory, so it goes, and the same --out can be given again.
            shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        POOL.close()
        if user_conf is not None:
            os.environ["SOFTHSM2_CONF"] = user_conf


def _rehearse(
    root: Path,
    setup: Setup,
    chosen: Drill | None,
    pins: dict[str, str],
    sides: tuple[Leg, ...],
    resume: bool,
    strict: bool,
    say: Callable[[str], None],
    stream: TextIO,
) -> RehearsalResult:
    existing = setup.token != HSM_TOKEN
    with set_stage(root, setup, pins, say, chosen=chosen, resume=resume, strict=strict):
        workspace = _run_sides(root, chosen, sides, not resume, strict, say, stream)
    if chosen is not None:
        raise RefusedError(
            f"Drill {chosen.name}: the ceremony did not stop, although it should have at phase "
            f"{chosen.stops_at}.",
            "This is a defect in the ceremony's checks; report it with the workspace.",
        )
    result = _verify(root, workspace, say)
    if existing:
        left = left_on_token(workspace.root)
        say(f"\nLeft on token {setup.token!r} by this rehearsal (remove them when done):")
        say("\n".join(f"  - {item}" for item in left) or "  nothing")
    return result


def set_stage(
    root: Path,
    setup: Setup,
    pins: dict[str, str],
    say: Callable[[str], None],
    *,
    chosen: Drill | None = None,
    resume: bool = False,
    strict: bool = False,
) -> Any:
    """The rehearsal's stage in ROOT: the tokens (made while the vault starts and creates its
    KEK), the local Managed HSM running, and the sample plan ROOT/plan.toml (kept as it is on
    `resume`). `strict`: the vault refuses everything Azure would. Returns the running vault,
    for the caller to stop."""
    from ceremony.localvault import LocalVault

    faults = chosen.vault_faults if chosen else ()
    existing = setup.token != HSM_TOKEN
    with ThreadPoolExecutor(1) as helper:
        provisioned = (
            None if resume else helper.submit(_provision, root, setup, existing, pins, say)
        )
        vault = LocalVault(root / "vault", managed_hsm=True, faults=faults, strict=strict)
        vault.start()
        try:
            kek = None if resume else _create_kek(root, vault.url, say)
            people, found = provisioned.result() if provisioned is not None else (None, None)
            if people is not None and found is not None:
                if setup.trusted_wrap(found.native_rsa_aes) and SO_PIN not in pins:
                    raise UsageError(
                        f"Phase 03 has the security officer trust the KEK on token "
                        f"{setup.token!r}, and CEREMONY_SO_PIN is not set.",
                        "Set CEREMONY_SO_PIN to the token's SO PIN and rerun.",
                    )
                _write_plan(root, vault.url, people, kek, chosen, setup, found.native_rsa_aes)
        except BaseException:
            vault.stop()
            raise
    return vault


def _run_sides(
    root: Path,
    chosen: Drill | None,
    sides: tuple[Leg, ...],
    kernels_prepared: bool,
    strict: bool,
    say: Callable[[str], None],
    stream: TextIO,
) -> Workspace:
    """Each leg on its own side: the workspace carried to it with the paper record of the last
    checkpoint, then run there; a leg already done (a resumed rehearsal) is skipped."""
    from ceremony.runner import Runner, RunOptions

    online, offline = sides[0].workspace, sides[1].workspace
    gap = sides[1].note
    say(
        f"Two sides, as on the day. Online side: {online}; {ONLINE_NOTE}. Offline side: "
        f"{offline}; {gap}."
    )
    if not sides[1].prefix:
        say(f"NOTE: {gap} (recorded with each offline phase).")
    try:
        for leg in sides:
            current = newest([online, offline])
            if leg.done_in(current):
                continue
            paper = paper_record(current)
            carry(current, leg.workspace, say)
            options = RunOptions(
                phases=leg.phases,
                rehearsal=True,
                strict=strict,
                auto_confirm=True,
                kernel_env=leg.env,
                collect_pins=False,
                warm_kernels=True,
                kernels_prepared=kernels_prepared,
                after_phase=_drill_hook(chosen),
                kernel_prefix=leg.prefix,
                side_note=leg.note,
                paper_record=paper,
            )
            say(f"\n##### {leg.describe()}")
            Runner(root / "plan.toml", leg.workspace, options, out=stream).run()
    except CeremonyError as exc:
        if chosen is None:
            raise
        _drill_stopped(chosen, exc, say)
    plan = load_plan(root / "plan.toml")
    return Workspace.open(online, plan.ceremony.id, plan.sha256)


def _load_notebook_machinery() -> None:
    """papermill, to execute the notebooks, and nbconvert, to render them: each side waits for
    its renderings before the workspace is carried, so the first must not pay for the import."""
    from ceremony.runner import load_papermill

    load_papermill()
    import nbconvert  # noqa: F401


def _create_kek(root: Path, url: str, say: Callable[[str], None]) -> Any:
    """The key exchange key, made in the local vault as a vault owner would."""
    from ceremony.vault import connect, create_kek

    kek = create_kek(connect(local_vault_dir=root / "vault"), KEK_NAME)
    say(f"Local Managed HSM at {url}; KEK {kek.kid}")
    return kek


def _write_plan(
    root: Path,
    url: str,
    people: list,
    kek: Any,
    chosen: Drill | None,
    setup: Setup,
    native: bool,
) -> None:
    """The sample plan: the local vault and its KEK, the token, the people; the keys wrappable
    only under the trusted KEK where the token can do it. On an existing token the key names
    carry the ceremony's time, so that no label another rehearsal left is ever touched."""
    fingerprint = kek.fingerprint.hex
    if chosen and chosen.wrong_fingerprint:
        fingerprint = secrets.token_hex(32)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    values = {
        "ceremony_id": f"rehearsal-{stamp}",
        "vault_url": url,
        "vault_state": "vault",
        "kek_name": KEK_NAME,
        "kek_fingerprint": fingerprint,
        "hsm_module": setup.module,
        "hsm_token": setup.token,
        "key_prefix": "rehearsal" if setup.token == HSM_TOKEN else f"rehearsal-{stamp}",
        "wrap_with_trusted": setup.trusted_wrap(native),
        "wrap": setup.wrap,
        "people": people,
    }
    (root / "plan.toml").write_text(render_plan(values))


def _verify(root: Path, ws: Workspace, say: Callable[[str], None]) -> RehearsalResult:
    """`ceremony verify --plan` on the archive, as an auditor holding the reviewed plan would."""
    from ceremony.evidence import verify_path
    from ceremony.evidence.anchors import Anchors, ReviewedPlan

    archive = ws.path("archive.tar")
    report = verify_path(archive, anchors=Anchors(ReviewedPlan.load(root / "plan.toml")))
    say(report.table())
    result = RehearsalResult(
        root, ws.root, archive, ws.path("evidence", "report.html"), bool(report.verified)
    )
    if not result.verified:
        raise RefusedError(
            f"The rehearsal archive {archive} did not verify: {report.first_failure}.",
            "Keep the directory and report it.",
        )
    say(
        f"\nRehearsal complete and verified.\nEvidence archive: {archive}\n"
        f"Archive SHA-256 (the final fingerprint): {report.archive_sha256}\n"
        f"Report: {result.report}\n{report.rests_on}"
    )
    return result


def _drill_hook(chosen: Drill | None) -> Callable[[Phase, Workspace], None] | None:
    if chosen is None or chosen.tamper_after is None:
        return None

    def hook(phase: Phase, ws: Workspace) -> None:
        if phase.number == chosen.tamper_after:
            _tamper(ws)

    return hook


def _drill_stopped(chosen: Drill, exc: CeremonyError, say: Callable[[str], None]) -> NoReturn:
    stopped = getattr(exc, "phase", None)
    if stopped != chosen.stops_at:
        raise RefusedError(
            f"Drill {chosen.name}: the ceremony stopped at phase {stopped}, not at "
            f"{chosen.stops_at} where it should have: {exc}",
            "This is a defect in the ceremony's checks; report it with the workspace.",
        ) from None
    say(f"\nThe ceremony stopped at phase {stopped}, as this drill intends:\n  {exc}")
    say(f"\nWhat the drill teaches: {chosen.lesson}\n")
    raise RefusedError(
        f"Drill {chosen.name}: the ceremony stopped at phase {stopped}, as it must.",
        "Nothing is wrong with the workbook: a drill always ends with the ceremony refusing.",
    ) from None
