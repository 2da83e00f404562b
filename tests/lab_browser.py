"""A practice lab and a trainee in a real browser: `ceremony lab --practice` in a subprocess, and
JupyterLab driven by playwright the way a trainee drives it — open a notebook, Run All Cells,
answer each question from what the page shows. Every wait is on a concrete page state."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ceremony.phases import PHASES

START_SECONDS = 120  # tokens, vault and JupyterLab on a busy machine
PHASE_SECONDS = 180  # one notebook, Run All to its last answer
SAVE_SECONDS = 30  # autosave is every few seconds
WITNESS = "wanda"  # the practice plan's witness

CONFIRMED = re.compile(r"confirmed by \w+ \(transcript head [0-9a-f]{64} confirmed\)")
ERROR = re.compile(r"\b\w*Error: ")
CHECKPOINT_QUESTION = "When all agree, type the first two words of"
KERNEL_IDLE = "Python 3 (ceremony workbook) | Idle"


@dataclass
class PracticeLab:
    """`ceremony lab --practice ROOT`, serving on a free localhost port with a token."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, root: Path, config: Path, port: int) -> PracticeLab:
        token = "practice-lab-token"
        config.mkdir(parents=True)
        (config / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {"port": port, "ip": "127.0.0.1", "open_browser": False},
            "IdentityProvider": {"token": token},
        }))  # fmt: skip
        log = config / "lab.log"
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config)}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "ceremony", "lab", "--practice", str(root)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        lab = cls(root, port, token, process, log)
        lab._wait_until_serving()
        return lab

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def url(self, notebook: str) -> str:
        """The notebook alone in a fresh JupyterLab layout (`reset`: no tabs left over)."""
        return f"{self.base}/lab/tree/{notebook}?reset&token={self.token}"

    def _wait_until_serving(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                opener.open(f"{self.base}/api/status?token={self.token}", timeout=5).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(
                        f"the practice lab did not start:\n{self.output()}"
                    ) from None
                time.sleep(0.5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        """Stop it as a trainer's Ctrl-C does; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class Trainee:
    """A trainee at JupyterLab: runs each notebook and answers its questions from the page,
    writing down each confirmed checkpoint's head words as the paper record."""

    page: Any
    lab: PracticeLab
    paper: dict[str, str] = field(default_factory=dict)  # phase -> first two head words
    prompts: list[str] = field(default_factory=list)
    # phase -> seconds from Run All Cells to its checkpoint's question on the page
    to_checkpoint: dict[str, float] = field(default_factory=dict)

    def open(self, notebook: str) -> None:
        self.page.goto(self.lab.url(notebook))
        self.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        # Its kernel is started (Run All before that would ask which kernel to start).
        self.page.locator(".jp-StatusBar-Widget", has_text=KERNEL_IDLE).wait_for()

    def run_all(self) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    def run_phase(self, number: str, *, wrong_words: int = 0) -> str:
        """Open and Run All the phase's notebook; answer until it is confirmed or stops. The
        first `wrong_words` answers to the checkpoint are wrong. Returns how it ended: the
        confirmation line, or the error shown in the cell."""
        self.open(next(p.notebook for p in PHASES if p.number == number))
        self.run_all()
        started = time.monotonic()
        outputs = self.page.locator(".jp-OutputArea-output")
        stdin = self.page.locator(".jp-Stdin-input")
        confirmed = outputs.filter(has_text=CONFIRMED)
        error = self.page.locator(".jp-OutputArea-output.jp-RenderedText").filter(has_text=ERROR)
        deadline = time.monotonic() + PHASE_SECONDS
        while True:
            remaining = max(deadline - time.monotonic(), 1) * 1000
            stdin.or_(confirmed).or_(error).first.wait_for(timeout=remaining)
            if confirmed.count():
                self.wait_until_saved()
                return confirmed.last.inner_text()
            if error.count():
                return error.last.inner_text()
            prompt = self.page.locator(".jp-Stdin-prompt").last.inner_text()
            self.prompts.append(prompt)
            if CHECKPOINT_QUESTION in prompt:
                self.to_checkpoint.setdefault(number, time.monotonic() - started)
            answer = self.answer(number, prompt)
            if CHECKPOINT_QUESTION in prompt and wrong_words:
                wrong_words -= 1
                answer = "wrong words"
            box = stdin.last.element_handle()
            box.fill(answer)
            box.press("Enter")
            box.wait_for_element_state("hidden", timeout=remaining)  # answered, or gone

    def answer(self, number: str, prompt: str) -> str:
        """What the trainee types, read from the page (or, for the paper record, from the
        words written down at the last checkpoint)."""
        paper = re.search(r"paper record of checkpoint (\d\d)", prompt)
        if paper:
            return self.paper[paper.group(1)]
        if "Who confirmed?" in prompt:
            return WITNESS
        checkpoint = self.page.locator(".jp-OutputArea-output").filter(
            has=self.page.locator("h3", has_text="Checkpoint after phase")
        )
        if "of the transcript head" in prompt:
            row = checkpoint.last.locator("tr", has_text="Transcript head")
        else:  # the last checkpoint: the archive's SHA-256, its first value
            row = checkpoint.last.locator("tr:has(i)").first
        words = " ".join(row.locator("i").inner_text().split()[:2])
        self.paper[number] = words
        return words

    def wait_until_saved(self) -> None:
        """Until JupyterLab has saved the notebook (its tab no longer marked changed)."""
        dirty = self.page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
        deadline = time.monotonic() + SAVE_SECONDS
        while dirty.count():
            assert time.monotonic() < deadline, "JupyterLab did not save the notebook"
            time.sleep(0.25)
