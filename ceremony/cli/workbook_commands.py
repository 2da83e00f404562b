"""cli.workbook_commands: `ceremony plan check`, `phases`, `run`, `rehearse` and `lab`.

Parses arguments, calls the workbook modules and prints; holds no ceremony logic of its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from ceremony.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser("plan", help="check a ceremony plan")
    plan_sub = plan.add_subparsers(dest="plan_command", metavar="ACTION", required=True)
    check = plan_sub.add_parser("check", help="validate a plan and summarise it")
    check.add_argument("plan", type=Path, help="the ceremony plan (TOML)")
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
        help="a whole ceremony on this machine: SoftHSM2, local vault, sample plan, evidence",
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
        help="continue an interrupted rehearsal in --out (needs the PINs it was started with)",
    )
    rehearse.set_defaults(handler=run_rehearsal)

    lab = subparsers.add_parser(
        "lab",
        help="open the workbook's notebooks in JupyterLab",
        description="With PLAN and --workspace: prepare parameterized copies of the six phase "
        "notebooks in WORKSPACE/lab and open them, kernels over IPC. Without: open the folder "
        "given by --dir (default: the workbook's own notebooks, for reading).",
    )
    lab.add_argument("plan", type=Path, nargs="?", help="the ceremony plan (TOML)")
    lab.add_argument("--workspace", type=Path, help="the ceremony's workspace")
    lab.add_argument("--rehearsal", action="store_true", help="prepare them in rehearsal mode")
    lab.add_argument("--dir", type=Path, help="notebook directory to open instead")
    lab.set_defaults(handler=open_lab)


def plan_check(args: argparse.Namespace) -> int:
    from ceremony.plan import load_plan

    plan = load_plan(args.plan)
    print(f"Plan {plan.path} is valid (sha256 {plan.sha256}).")
    print(f"  ceremony  {plan.ceremony.id}: {plan.ceremony.purpose}")
    print(f"  vault     {plan.vault.url} ({plan.vault.flavour}); KEK {plan.kek.name}")
    print(f"  HSM       token {plan.hsm.token!r} via {plan.hsm.module}")
    for key in plan.keys:
        print(f"  key       {key.name}: {key.spec.describe()}, key_ops {list(key.key_ops)}")
    for person in plan.people:
        print(f"  person    {person.name} ({person.role})")
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
    print(
        f"\nDone: ran {', '.join(report.ran) or 'nothing'}"
        f"{'; already complete: ' + ', '.join(report.skipped) if report.skipped else ''}."
        f" Workspace: {report.workspace}"
    )
    return 0


def run_rehearsal(args: argparse.Namespace) -> int:
    from ceremony.rehearsal import rehearse

    rehearse(args.out, args.drill, resume=args.resume)
    return 0


def open_lab(args: argparse.Namespace) -> int:
    from ceremony.lab import lab_command, prepare_notebooks
    from ceremony.resources import notebooks_dir

    if args.plan is not None:
        if args.workspace is None:
            raise UsageError("A plan needs its workspace.", "Add --workspace DIR.")
        folder = prepare_notebooks(
            args.plan, args.workspace, "rehearsal" if args.rehearsal else "ceremony"
        )
    else:
        folder = args.dir or notebooks_dir()
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a directory.", "Give the folder with the notebooks.")
    print(
        f"Opening JupyterLab on {folder}. Set CEREMONY_PIN (and CEREMONY_PIN_<NAME>) in this shell "
        "first; PINs are never typed into a notebook. Checkpoints are asked in the notebooks."
    )
    with tempfile.TemporaryDirectory(prefix="ceremony-lab-") as sockets:
        return subprocess.call(lab_command(folder, Path(sockets)), env=os.environ.copy())
