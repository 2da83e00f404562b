"""bench_lab: seconds per phase in the practice lab (JupyterLab in Chromium, Run All Cells to the
checkpoint's question) beside `ceremony run`'s (the runner on the same practice stage, from the
phase's start to its checkpoint). A report, not a target: the lab adds a browser, a kernel per
notebook and the paper-record question; the figures show what a trainee waits for.
Run: python -m bench.bench_lab
"""

from __future__ import annotations

import io
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from ceremony.phases import PHASES


def runner_phases(folder: Path) -> dict[str, float]:
    """Seconds per phase of the runner on a fresh practice stage, as `ceremony run --rehearsal`
    runs it (a kernel started per phase), checkpoints confirmed automatically."""
    from ceremony.rehearsal import HSM_TOKEN, Setup, new_pins, prepare_out, set_stage
    from ceremony.runner import Runner, RunOptions
    from ceremony.softhsm import SoftHsm

    root = prepare_out(folder)
    pins = new_pins(root, existing_token=False)
    (root / "workspace").mkdir(mode=0o700)
    softhsm = SoftHsm(root / "softhsm")
    setup = Setup(softhsm.module_path, HSM_TOKEN, softhsm.conf_path, softhsm.conf_path)
    seconds: dict[str, float] = {}
    mark = [0.0]

    def lap(phase, _ws) -> None:
        now = time.perf_counter()
        seconds[phase.number] = now - mark[0]
        mark[0] = now

    with set_stage(root, setup, pins, lambda _: None):
        options = RunOptions(
            rehearsal=True,
            auto_confirm=True,
            kernel_env={**softhsm.environ(), **pins},
            collect_pins=False,
            after_phase=lap,
        )
        runner = Runner(root / "plan.toml", root / "workspace", options, out=io.StringIO())
        mark[0] = time.perf_counter()
        runner.run()
    return seconds


def lab_phases(folder: Path) -> dict[str, float]:
    """Seconds per phase in the practice lab, Run All Cells to the checkpoint's question."""
    from playwright.sync_api import sync_playwright

    from tests.fixtures_browser import LAUNCH_ARGS
    from tests.lab_browser import PracticeLab, Trainee

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lab = PracticeLab.start(folder / "practice", folder / "config", port)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=shutil.which("chromium"), args=LAUNCH_ARGS
            )
            trainee = Trainee(browser.new_page(viewport={"width": 1400, "height": 1000}), lab)
            for phase in PHASES:
                ended = trainee.run_phase(phase.number)
                if "confirmed by" not in ended:
                    raise SystemExit(f"bench_lab: phase {phase.number} stopped in the lab: {ended}")
            browser.close()
    finally:
        lab.stop()
    return trainee.to_checkpoint


def main() -> int:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("bench_lab: skipped, playwright is not installed (pip install -e '.[test]')")
        return 0
    if shutil.which("chromium") is None:
        print("bench_lab: skipped, Chromium is not installed (Debian package chromium)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
        lab = lab_phases(Path(tmp) / "lab")
        run = runner_phases(Path(tmp) / "run")
    print(f"{'phase':14} {'lab: Run All to checkpoint':>28} {'ceremony run':>14}")
    for phase in PHASES:
        print(f"{phase.title:14} {lab[phase.number]:27.1f}s {run[phase.number]:13.1f}s")
    total_lab, total_run = sum(lab.values()), sum(run.values())
    ratio = total_lab / total_run
    print(f"{'total':14} {total_lab:27.1f}s {total_run:13.1f}s  (lab/run {ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
