"""cli.workbook_commands: `ceremony plan check`, `phases`, `run`, `rehearse` and `lab`.

Parses arguments, calls the workbook modules and prints; holds no ceremony logic of its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ceremony.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser("plan", help="check a ceremony plan")
    plan_sub = plan.add_subparsers(dest="plan_command", metavar="ACTION", required=True)
    check = plan_sub.add_parser(
        "check",
        help="validate a plan and summarise it",
        description="Names every wrong field at once, then checks every file the plan names: "
        "public keys, release policies, and each file: signer's key (readable, matching the "
        "person's public key, and with --workspace, outside the workspace).",
    )
    check.add_argument("plan", type=Path, help="the ceremony plan (TOML)")
    check.add_argument("--workspace", type=Path, help="the ceremony's workspace, if chosen")
    check.set_defaults(handler=plan_check)

    phases = subparsers.add_parser("phases", help="the six phases and which machine runs each")
    phases.set_defaults(handler=list_phases)

    run = subparsers.add_parser(
        "run",
        help="run the ceremony's phases through their notebooks, with witness checkpoints",
        description="Executes the phase notebooks in order (papermill, IPC kernel), keeps each "
        "executed notebook in the workspace, and asks the witnesses to confirm each checkpoint. "
        "Rerunning resumes after the last confirmed phase. PINs come from CEREMONY_PIN and "
        "CEREMONY_PIN_<NAME> or hidden prompts, never from arguments.",
    )
    run.add_argument("plan", type=Path, help="the ceremony plan (TOML)")
    run.add_argument("--workspace", type=Path, required=True, help="the ceremony's workspace")
    run.add_argument(
        "--phases", help="which phases, e.g. 00-01 (online side), 02,03 (offline side); default all"
    )
    run.add_argument(
        "--rehearsal",
        action="store_true",
        help="rehearsal mode: local vault allowed, both sides on one machine, SoftHSM2 warnings",
    )
    run.add_argument("--no-qr", action="store_true", help="do not print QR codes at checkpoints")
    run.set_defaults(handler=run_phases)

    rehearse = subparsers.add_parser(
        "rehearse",
        help="a whole ceremony on this machine, its two sides apart: HSM, local vault, evidence",
        description="A dress rehearsal of the day: the online phases run with no HSM "
        "configuration or PIN, the offline phases in a new network namespace where the system "
        "allows one, the workspace carried between two folders; only Azure is replaced, by the "
        "local vault.",
    )
    rehearse.add_argument("--out", type=Path, required=True, help="a new directory for it all")
    rehearse.add_argument(
        "--drill",
        choices=("kek-fingerprint", "tampered-byok", "cloud-outage", "missing-signature"),
        help="inject a fault the ceremony must catch, and see where it stops",
    )
    rehearse.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted rehearsal in --out, with the PINs it generated (or the ones "
        "set in the environment when it started)",
    )
    rehearse.add_argument(
        "--module",
        metavar="LIB",
        help="the PKCS#11 module to rehearse on (default: the installed SoftHSM2); throwaway "
        "tokens are made on SoftHSM2, any other module needs --token. On a token with the "
        "native CKM_RSA_AES_KEY_WRAP the keys are wrappable only under the trusted KEK",
    )
    rehearse.add_argument(
        "--token",
        metavar="LABEL",
        help="use this existing token of --module (an HSM's test partition; PIN in "
        "CEREMONY_PIN, SO PIN in CEREMONY_SO_PIN): objects already on it are never touched, and "
        "what the rehearsal leaves on it is listed at the end",
    )
    rehearse.add_argument(
        "--strict",
        action="store_true",
        help="no rehearsal allowances: a token whose wrap deviates is refused in preflight, and "
        "the local vault refuses everything Azure would",
    )
    rehearse.add_argument(
        "--wrap",
        choices=("auto", "native", "two-step"),
        default="auto",
        help="the wrap path the rehearsal plan asks for (default: what the self-test picks); "
        "two-step keys are not CKA_WRAP_WITH_TRUSTED",
    )
    rehearse.set_defaults(handler=run_rehearsal)

    lab = subparsers.add_parser(
        "lab",
        help="open the workbook's notebooks in JupyterLab; --practice DIR: a practice ceremony",
        description="With --practice DIR: set up a practice ceremony in DIR (throwaway SoftHSM2 "
        "tokens whose PINs it shows, the local vault, a sample plan, a new workspace) and open "
        "its notebooks, for training a custodian. With PLAN and --workspace: prepare fresh "
        "parameterized copies of the six phase notebooks in a private folder and open them, "
        "kernels over IPC (PINs from CEREMONY_PIN, CEREMONY_SO_PIN and CEREMONY_PIN_<NAME> in this "
        "shell, SoftHSM2's tokens from SOFTHSM2_CONF). Without: open a read-only copy of the "
        "workbook's notebooks, for reading. Stopping it (Ctrl-C, kill, a closed terminal) stops "
        "JupyterLab, its kernels and the practice vault, keeps the executed notebooks in the "
        "workspace and removes the private folder.",
    )
    lab.add_argument("plan", type=Path, nargs="?", help="the ceremony plan (TOML)")
    lab.add_argument("--workspace", type=Path, help="the ceremony's workspace")
    lab.add_argument(
        "--rehearsal", action="store_true", help="prepare them in rehearsal mode (local vault)"
    )
    lab.add_argument(
        "--practice", type=Path, metavar="DIR", help="a new directory for a practice ceremony"
    )
    lab.add_argument("--module", help="with --practice: the SoftHSM2 PKCS#11 module to use")
    lab.set_defaults(handler=open_lab)


def plan_check(args: argparse.Namespace) -> int:
    from ceremony.plan import load_plan
    from ceremony.plan_problems import PlanProblems
    from ceremony.signer_check import key_file_problems

    plan = load_plan(args.plan)
    problems = key_file_problems(plan, args.workspace)
    if problems:
        raise PlanProblems(plan.path, problems)
    print(f"Plan {plan.path} is valid (sha256 {plan.sha256}).")
    print(f"  ceremony  {plan.ceremony.id}: {plan.ceremony.purpose}")
    print(f"  vault     {plan.vault.url} ({plan.vault.flavour}); KEK {plan.kek.name}")
    print(f"  HSM       token {plan.hsm.token!r} via {plan.hsm.module}")
    for key in plan.keys:
        print(f"  key       {key.name}: {key.spec.describe()}, key_ops {list(key.key_ops)}")
    for person in plan.people:
        signs = f"key file {person.key_file}" if person.key_file else "token " + person.signer
        print(f"  person    {person.name} ({person.role}), signs with {signs}")
    print("  quorum    " + ", ".join(f"{n} {role}" for role, n in plan.quorum.items()))
    return 0


def list_phases(args: argparse.Namespace) -> int:
    from ceremony.phases import PHASES, SIDES
    from ceremony.resources import notebooks_dir, templates_dir

    for phase in PHASES:
        print(f"{phase.title:12} on {SIDES[phase.side]}")
        print(f"{'':12} {phase.purpose}; leaves {', '.join(phase.leaves)}")
    print(f"\nNotebooks: {notebooks_dir()}")
    print(f"Plan template: {templates_dir() / 'plan.example.toml'}")
    return 0


def run_phases(args: argparse.Namespace) -> int:
    from ceremony.runner import Runner, RunOptions

    options = RunOptions(phases=args.phases, rehearsal=args.rehearsal, qr=not args.no_qr)
    report = Runner(args.plan, args.workspace, options).run()
    print(f"\n{report.summary()}")
    return 0


def run_rehearsal(args: argparse.Namespace) -> int:
    from ceremony.rehearsal import rehearse

    rehearse(
        args.out,
        args.drill,
        resume=args.resume,
        module=args.module,
        token=args.token,
        strict=args.strict,
        wrap=args.wrap,
    )
    return 0


def open_lab(args: argparse.Namespace) -> int:
    from ceremony.lab import keep_on_exit, prepare_notebooks
    from ceremony.lab_session import reading_copy, run_lab

    if args.practice is not None:
        if args.plan is not None or args.workspace is not None:
            raise UsageError(
                "A practice ceremony makes its own plan and workspace.",
                "Give either --practice DIR, or PLAN with --workspace DIR.",
            )
        from ceremony.practice import practice_lab

        return practice_lab(args.practice, args.module)
    if args.module is not None:
        raise UsageError("--module is for a practice ceremony.", "Add --practice DIR.")
    if args.plan is not None and args.workspace is None:
        raise UsageError("A plan needs its workspace.", "Add --workspace DIR.")
    plan, workspace = args.plan, args.workspace
    mode = "rehearsal" if args.rehearsal else "ceremony"

    def notebooks(private: Path) -> Path:
        if plan is None:
            return reading_copy(private)
        return prepare_notebooks(plan, workspace, mode, private / "notebooks")

    print(
        "Opening JupyterLab on fresh copies of the workbook's notebooks"
        + (" (read-only)" if plan is None else f" for {plan}")
        + ". Set CEREMONY_PIN (and CEREMONY_PIN_<NAME>) in this shell first; PINs are never "
        "typed into a notebook. Checkpoints are asked in the notebooks.",
        flush=True,
    )
    return run_lab(notebooks, on_exit=None if plan is None else keep_on_exit(plan, workspace))
