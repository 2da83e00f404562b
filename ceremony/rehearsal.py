"""rehearsal: a whole ceremony on one machine — SoftHSM2, the local vault, a sample plan, drills.

Sets up throwaway tokens and a local Managed HSM in the output directory, runs all six phases with
automatic (and so marked) confirmations, and verifies the archive. PINs it generates for the
throwaway tokens are kept in one 0600 file beside the workspace (never in it, so never sealed), so
that any rehearsal can be resumed; PINs given in the environment are never written anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ceremony.airgap import REHEARSAL_NOTE
from ceremony.errors import CeremonyError, RefusedError, UsageError
from ceremony.files import write_new
from ceremony.phases import PHASES, Phase
from ceremony.pins import SO_PIN, USER_PIN
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


def _prepare_out(out: Path) -> Path:
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


def _tamper(ws: Workspace, name: str) -> None:
    """Change one character of a .byok's ciphertext (the drill plays the attacker)."""
    path = ws.path("keys", f"{name}.byok")
    data = bytearray(path.read_bytes())
    at = data.index(b'"ciphertext":"') + len(b'"ciphertext":"') + 40
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    path.write_bytes(bytes(data))


def _pin_variables() -> list[str]:
    return [USER_PIN, SO_PIN, *(person_variable(n) for n, _ in PEOPLE)]


def _new_pins(root: Path, chosen: Drill | None) -> tuple[dict[str, str], dict[str, str]]:
    """Every PIN of the rehearsal, and those the kernels get (the drill's absent signer's not).

    A PIN not given in the environment is generated and kept in PIN_FILE (0600, outside the
    workspace), so that `--resume` can carry on with the same tokens."""
    pins, generated = {}, {}
    for variable in _pin_variables():
        pins[variable] = os.environ.get(variable) or generated.setdefault(
            variable, secrets.token_hex(12)
        )
    if generated:
        text = json.dumps(generated, indent=2) + "\n"
        write_new(root / PIN_FILE, text.encode(), mode=0o600)
    absent = person_variable(chosen.absent_signer) if chosen and chosen.absent_signer else None
    return pins, {k: v for k, v in pins.items() if k != absent}


def _provision(
    softhsm: Any, root: Path, pins: dict[str, str], say: Callable[[str], None]
) -> tuple[list[dict], bool]:
    """Throwaway tokens: one for the keys, one signing token per person. Returns the people and
    whether the keys' token has the native CKM_RSA_AES_KEY_WRAP that wrap-with-trusted needs."""
    from ceremony.hsm import open_session
    from ceremony.hsm.module import load_module
    from ceremony.signers import create_file_signing_key, create_token_signing_key

    softhsm.activate()
    load_module(softhsm.module_path)  # tokens are then made in this process, not in children
    softhsm.create_token(HSM_TOKEN, pins[USER_PIN], so_pin=pins[SO_PIN])
    with open_session(softhsm.module_path, HSM_TOKEN, pin=pins[USER_PIN]) as session:
        native = session.self_test().native_rsa_aes
    people = []
    (root / "people").mkdir(mode=0o700)
    for name, role in PEOPLE:
        pin = pins[person_variable(name)]
        if name == FILE_SIGNER:  # its PIN is the key file's passphrase
            _, public_pem = create_file_signing_key(root / "people" / f"{name}.key", pin)
            reference = f"file:people/{name}.key"  # relative to the plan, as a plan writes it
        else:
            softhsm.create_token(name, pin)
            reference, public_pem = create_token_signing_key(softhsm.module_path, name, pin)
        (root / "people" / f"{name}.pub.pem").write_text(public_pem)
        person = {"name": name, "role": role, "public_key": f"people/{name}.pub.pem"}
        people.append({**person, "signer": reference})
    names = ", ".join(n for n, _ in PEOPLE if n != FILE_SIGNER)
    say(
        f"SoftHSM2 tokens: {HSM_TOKEN} (keys) and one signing token each for {names}; "
        f"{FILE_SIGNER} signs with a passphrase-protected key file"
    )
    return people, native


def _resumed_environment(root: Path) -> dict[str, str]:
    """The PINs of the first run: from the environment, else from the rehearsal's PIN_FILE."""
    if not (root / "plan.toml").exists():
        raise UsageError(f"{root} holds no rehearsal to resume.", "Start one with --out DIR.")
    kept: dict[str, str] = {}
    if (root / PIN_FILE).exists():
        kept = json.loads((root / PIN_FILE).read_text(encoding="utf-8"))
    pins = {v: os.environ.get(v) or kept.get(v, "") for v in _pin_variables()}
    missing = [v for v, pin in pins.items() if not pin]
    if missing:
        raise UsageError(
            f"Cannot resume: {', '.join(missing)} not set, and {root / PIN_FILE} does not hold "
            "them (PINs given in the environment are never stored).",
            "Set them as they were when the rehearsal started, then resume.",
        )
    return pins


def rehearse(
    out: str | Path,
    drill: str | None = None,
    *,
    resume: bool = False,
    module: str | None = None,
    stream: TextIO = sys.stdout,
) -> RehearsalResult:
    """Run the whole sample ceremony in `out`; with a drill, stop where the drill says it must.

    `resume` continues a rehearsal that was interrupted, with the PINs of its first run.
    `module` is the SoftHSM2 module to rehearse on (default: the installed one)."""
    chosen = DRILLS.get(drill) if drill else None
    if drill and chosen is None:
        raise UsageError(f"There is no drill {drill!r}.", f"Choose one of {', '.join(DRILLS)}.")
    root = Path(out).resolve() if resume else _prepare_out(Path(out))

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    say(f"Rehearsal in {root}" + (f" — drill {chosen.name}" if chosen else ""))
    # The Azure SDK is imported by both the vault client and securesystemslib's signers, which
    # the set-up below uses from two threads; importing a package from two threads at once can
    # meet it half-initialised, so both are imported here, before any thread starts.
    import ceremony.signers
    import ceremony.vault  # noqa: F401

    # Import the notebook machinery while the tokens and the vault are set up.
    from ceremony.runner import load_papermill

    threading.Thread(target=load_papermill, daemon=True).start()
    from ceremony.kernel import POOL, kernel_home
    from ceremony.softhsm import SoftHsm

    if resume:
        pins = kernel_pins = _resumed_environment(root)
    else:
        pins, kernel_pins = _new_pins(root, chosen)
        (root / "workspace").mkdir(mode=0o700)
    softhsm = SoftHsm(root / "softhsm", module)
    env = {**softhsm.environ(), **kernel_pins}
    # The first phase's kernel starts now, while the tokens and the vault are set up.
    POOL.prepare(env, kernel_home(), count=len(PHASES))
    try:
        return _rehearse(root, softhsm, chosen, pins, env, resume, say, stream)
    finally:
        POOL.close()


def _rehearse(
    root: Path,
    softhsm: Any,
    chosen: Drill | None,
    pins: dict[str, str],
    env: dict[str, str],
    resume: bool,
    say: Callable[[str], None],
    stream: TextIO,
) -> RehearsalResult:
    from ceremony.localvault import LocalVault
    from ceremony.runner import Runner, RunOptions

    faults = chosen.vault_faults if chosen else ()
    with ThreadPoolExecutor(1) as helper:
        # The tokens are made while the vault starts and creates its KEK.
        provisioned = None if resume else helper.submit(_provision, softhsm, root, pins, say)
        vault = LocalVault(root / "vault", managed_hsm=True, faults=faults).start()
        try:
            kek = None if resume else _create_kek(root, vault.url, say)
            people, native = provisioned.result() if provisioned is not None else (None, False)
        except BaseException:
            vault.stop()
            raise
    with vault:
        if people is not None:
            _write_plan(root, vault.url, people, kek, chosen, softhsm.module_path, native)
        options = RunOptions(
            rehearsal=True,
            auto_confirm=True,
            kernel_env=env,
            collect_pins=False,
            warm_kernels=True,
            after_phase=_drill_hook(chosen),
        )
        runner = Runner(root / "plan.toml", root / "workspace", options, out=stream)
        say(f"NOTE: {REHEARSAL_NOTE}")
        try:
            runner.run()
        except CeremonyError as exc:
            if chosen is None:
                raise
            _drill_stopped(chosen, exc, say)
    if chosen is not None:
        raise RefusedError(
            f"Drill {chosen.name}: the ceremony did not stop, although it should have at phase "
            f"{chosen.stops_at}.",
            "This is a defect in the ceremony's checks; report it with the workspace.",
        )
    return _verify(root, runner.ws, say)


def _create_kek(root: Path, url: str, say: Callable[[str], None]) -> Any:
    """The key exchange key, made in the local vault as a vault owner would."""
    from ceremony.vault import connect, create_kek

    kek = create_kek(connect(local_vault_dir=root / "vault"), KEK_NAME)
    say(f"Local Managed HSM at {url}; KEK {kek.kid}")
    return kek


def _write_plan(
    root: Path, url: str, people: list, kek: Any, chosen: Drill | None, module: str, native: bool
) -> None:
    """The sample plan: the local vault and its KEK, the token, the people; the keys wrappable
    only under the trusted KEK where the token can do it."""
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
        "hsm_module": module,
        "hsm_token": HSM_TOKEN,
        "wrap_with_trusted": native,
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
            _tamper(ws, "rehearsal-ec")

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
