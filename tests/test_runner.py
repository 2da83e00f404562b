"""Tests for ceremony.runner (+ kernel, checkpoint, workspace, phases, airgap): IPC kernels, order,
binding, one-line refusals, and resuming a killed run without a second key or import."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import sys
from pathlib import Path

import nbformat
import pytest

from bench.chaos import token_objects, vault_versions
from ceremony.airgap import check_side, network_signs, reachable
from ceremony.checkpoint import (
    Checkpoint,
    CheckpointItem,
    ask_confirmation,
    automatic_confirmation,
)
from ceremony.errors import CeremonyError, RefusedError, UsageError
from ceremony.evidence.secrets import scan_archive
from ceremony.phases import phase, select
from ceremony.plan import load_plan
from ceremony.rehearsal import PIN_FILE
from ceremony.runner import Runner, RunOptions, execute_notebook, phase_status
from ceremony.signers import create_file_signing_key
from ceremony.steps import begin
from ceremony.workspace import Workspace
from tests.workbook_support import PINS, ceremony, clean_env, events, killed_rehearsal

PLAN = """
[ceremony]
id = "{id}"
purpose = "Runner tests."

[vault]
url = "https://127.0.0.1:9"
flavour = "managed-hsm"
local_state = "vault"

[kek]
name = "kek"
fingerprint = "{fp}"

[hsm]
module = "{module}"
token = "{token}"

[[keys]]
name = "k1"
type = "EC-HSM"
curve = "P-256"
key_ops = ["sign", "verify"]

[[people]]
name = "ada"
role = "administrator"
public_key = "ada.pem"
signer = "file:ada.key"

[[people]]
name = "wanda"
role = "witness"
public_key = "wanda.pem"
signer = "file:wanda.key"

[quorum]
witness = 1
"""


def write_plan(folder: Path, name: str = "plan.toml", **values: str) -> Path:
    """A small valid plan, its signing key files beside it; by default its HSM module is absent
    (an online machine)."""
    for person in ("ada", "wanda"):
        if not (folder / f"{person}.pem").exists():
            _, public = create_file_signing_key(folder / f"{person}.key")
            (folder / f"{person}.pem").write_text(public)
    fields = {"id": "runner-test", "fp": "cd" * 32, "module": "/nonexistent/p11.so", "token": "t"}
    path = folder / name
    path.write_text(PLAN.format(**{**fields, **values}))
    return path


# -- phases, checkpoint, air gap: small rules ----------------------------------------------------


def test_phase_selection():
    assert [p.number for p in select("02,03")] == ["02", "03"]
    assert [p.number for p in select("03,1-2")] == ["01", "02", "03"]
    assert [p.number for p in select(None)] == ["00", "01", "02", "03", "04", "05"]
    assert phase("generate").number == phase("2").number == phase("02_generate").number == "02"
    with pytest.raises(UsageError, match="no phase"):
        select("07")
    with pytest.raises(UsageError, match="backwards"):
        select("04-02")


def checkpoint() -> Checkpoint:
    return Checkpoint("02", "02 generate", (CheckpointItem("k1 public key", "ab" * 32),), "0f" * 32)


def test_confirmation_needs_the_head_words_and_a_plan_witness():
    cp = checkpoint()
    refused = []
    answers = iter(["wrong words", cp.challenge.upper(), "", "mallory", "Wanda"])
    confirmation = ask_confirmation(
        cp, ["wanda"], 1, ask=lambda _: next(answers), refused=refused.append
    )
    assert confirmation.witnesses == ("wanda",) and not confirmation.automatic
    assert confirmation.to_dict(cp)["confirmed_head"] == cp.head
    # Every mistaken answer was asked again and handed over for the transcript.
    assert [(r["question"], r["answer"]) for r in refused] == [
        ("head-words", "wrong words"),
        ("witnesses", ""),
        ("witnesses", "mallory"),
    ]
    assert "requires 1" in refused[1]["reason"] and "not a witness" in refused[2]["reason"]
    with pytest.raises(RefusedError, match="3 answers to 'head-words'"):
        ask_confirmation(cp, ["wanda"], 1, ask=lambda _: "nope")
    answers = iter([cp.challenge, "mallory", "walt", ""])
    with pytest.raises(RefusedError, match=r"3 answers to 'witnesses'.*requires 2"):
        ask_confirmation(cp, ["wanda", "walt"], 2, ask=lambda _: next(answers))

    def closed(_: str) -> str:
        raise EOFError

    with pytest.raises(RefusedError, match="input ended"):
        ask_confirmation(cp, ["wanda"], 1, ask=closed)
    assert automatic_confirmation(["wanda", "walt"], 1).automatic


def test_runner_asks_again_records_refusals_and_says_what_it_confirmed(tmp_path):
    """A mistaken answer costs nothing: it is in the transcript, and the next answer counts."""
    plan = write_plan(tmp_path)
    holder: list[Runner] = []

    def head_words() -> str:
        completion = phase_status(holder[0].ws)["00"].completion
        return Checkpoint("00", "00", (), completion.line_sha256).challenge

    answers = iter([lambda: "wrong words"] * 3)
    options = RunOptions(phases="00", rehearsal=True, qr=False, ask=lambda _: next(answers)())
    holder.append(Runner(plan, tmp_path / "ws", options, out=io.StringIO()))
    with pytest.raises(RefusedError, match="not confirmed"):
        holder[0].run()
    assert not phase_status(holder[0].ws)["00"].confirmed
    answers = iter([head_words, lambda: "", lambda: "mallory", lambda: "wanda"])
    holder[0] = Runner(plan, tmp_path / "ws", options, out=io.StringIO())
    report = holder[0].run()
    assert phase_status(holder[0].ws)["00"].confirmed
    refusals = [e.data for e in holder[0].ws.events() if e.action == "checkpoint-answer-refused"]
    wrong_words = [("head-words", "wrong words")] * 3
    assert [(r["question"], r["answer"]) for r in refusals] == [
        *wrong_words,
        ("witnesses", ""),
        ("witnesses", "mallory"),
    ]
    # The run confirmed a checkpoint of a phase completed before: the summary says so.
    assert report.ran == () and report.confirmed == ("00",)
    assert report.summary().startswith("Done: confirmed the checkpoint of phase(s) 00.")
    again = Runner(plan, tmp_path / "ws", options, out=io.StringIO()).run()
    assert again.summary().startswith("Done: nothing new; already complete and confirmed: 00.")


def test_checkpoint_text_shows_hex_words_and_qr():
    text = checkpoint().render_text()
    assert "ABAB ABAB" in text and "Transcript head" in text
    assert checkpoint().items[0].fingerprint.words.split()[0] in text
    assert "█" in text or "▀" in text


def test_offline_phase_refused_with_azure_credentials(tmp_path, monkeypatch):
    plan = load_plan(write_plan(tmp_path))
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "x")
    with pytest.raises(RefusedError, match="AZURE_CLIENT_SECRET is set"):
        check_side(phase("02"), plan, rehearsal=False)
    assert check_side(phase("01"), plan, rehearsal=False) is None  # online phase
    assert "one machine" in check_side(phase("03"), plan, rehearsal=True)


def test_reachable_vault_is_a_sign_of_network(tmp_path, monkeypatch):
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        plan = load_plan(write_plan(tmp_path).parent / "plan.toml")
        text = plan.path.read_text().replace("https://127.0.0.1:9", f"https://127.0.0.1:{port}")
        plan.path.write_text(text)
        signs = network_signs(load_plan(plan.path), home=tmp_path)
        assert signs == ["the vault 127.0.0.1 answers from this machine"]
    assert not reachable("127.0.0.1", port, timeout=1)


# -- workspace binding and order ------------------------------------------------------------------


def test_workspace_refuses_another_ceremony_and_a_changed_plan(tmp_path):
    ws = Workspace.open(tmp_path / "ws", "ceremony-a", "1" * 64)
    assert Workspace.open(ws.root, "ceremony-a", "1" * 64).binding == ws.binding
    with pytest.raises(RefusedError, match="belongs to ceremony 'ceremony-a'"):
        Workspace.open(ws.root, "ceremony-b", "1" * 64)
    with pytest.raises(RefusedError, match="plan changed"):
        Workspace.open(ws.root, "ceremony-a", "2" * 64)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(RefusedError, match="not empty"):
        Workspace.open(tmp_path / "other", "ceremony-a", "1" * 64)
    ws.write_new("a.json", b"{}", phase="00", actor="ada")
    with pytest.raises(RefusedError, match="already exists"):
        ws.write_new("a.json", b"{}", phase="00", actor="ada")


def test_cli_refuses_workspace_of_another_ceremony_in_one_line(tmp_path):
    plan = write_plan(tmp_path)
    Workspace.open(tmp_path / "ws", "some-other-ceremony", "0" * 64)
    done = ceremony("run", str(plan), "--workspace", str(tmp_path / "ws"), "--rehearsal")
    assert done.returncode == 1
    assert done.stderr.startswith("ceremony: error: Workspace ")
    assert "belongs to ceremony 'some-other-ceremony'" in done.stderr
    assert done.stderr.count("\n") == 1


def test_cli_plan_errors_exit_2_in_one_line(tmp_path):
    plan = write_plan(tmp_path, token='t"\npin = "1234')
    done = ceremony("plan", "check", str(plan))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "hsm.pin looks like a secret" in done.stderr
    good = ceremony("plan", "check", str(write_plan(tmp_path, name="good.toml")))
    assert good.returncode == 0 and "is valid" in good.stdout


def test_real_ceremony_mode_refuses_the_local_vault(tmp_path):
    with pytest.raises(RefusedError, match="rehearsal vault"):
        Runner(write_plan(tmp_path), tmp_path / "ws", RunOptions())
    with pytest.raises(RefusedError, match="mode is 'ceremony'"):
        begin("00", write_plan(tmp_path), tmp_path / "ws2", "ceremony")


def test_notebook_step_refuses_a_phase_out_of_order(tmp_path):
    with pytest.raises(RefusedError, match="phase 00 preflight is not complete"):
        begin("03", write_plan(tmp_path), tmp_path / "ws", "rehearsal")


def test_a_refused_checkpoint_is_recorded_and_the_library_refuses_the_next_phase(tmp_path):
    """The runner and the notebooks apply one rule: a checkpoint refused at the prompt is in the
    transcript, and the next phase's notebook (here called as JupyterLab would) refuses to start,
    recording that too, because phase 00 is complete but not confirmed."""
    plan = write_plan(tmp_path)
    options = RunOptions(phases="00", rehearsal=True, qr=False, ask=lambda _: "wrong words")
    runner = Runner(plan, tmp_path / "ws", options, out=io.StringIO())
    with pytest.raises(RefusedError, match="checkpoint was not confirmed"):
        runner.run()
    actions = [e.action for e in runner.ws.events() if e.action != "notebook-kept"]
    assert actions.count("checkpoint-answer-refused") == 3
    assert actions[-1] == "phase-refused" and "phase-completed" in actions
    with pytest.raises(RefusedError, match="phase 00 preflight is not complete and confirmed"):
        begin("01", plan, tmp_path / "ws", "rehearsal")
    last = runner.ws.events()[-1]
    assert (last.phase, last.action) == ("01", "phase-refused")
    assert last.data["remedy"].startswith("Run phase 00 first and confirm its checkpoint")


def test_in_jupyterlab_the_checkpoint_is_shown_before_it_is_asked(tmp_path, monkeypatch):
    """In a kernel with stdin, complete() shows every value (the head's words included) before
    the question, asks in the notebook's own words, asks again on a mistake, and its result
    carries the mark the lab looks for before it keeps the saved notebook."""
    from ceremony.executed import confirmed_mark, keep_saved
    from ceremony.phases import PHASES
    from ceremony.steps import complete, context

    said: list[tuple[str, object]] = []
    answers = iter(["wrong words", None, "wanda"])
    shown: list = []

    def ask(prompt: str) -> str:
        said.append(("asked", prompt))
        answer = next(answers)
        return shown[0].challenge if answer is None else answer

    monkeypatch.setattr(context, "_kernel_has_stdin", lambda: True)
    monkeypatch.setattr("builtins.input", ask)
    monkeypatch.setattr(
        "IPython.display.display",
        lambda shown_: (shown.append(shown_), said.append(("shown", shown_))),
    )
    ctx = begin("00", write_plan(tmp_path), tmp_path / "ws", "rehearsal")
    result = complete(ctx)
    assert [kind for kind, _ in said] == ["shown", "asked", "asked", "asked"]
    checkpoint = shown[0]
    assert checkpoint.head_fingerprint.words in checkpoint.render_html()
    notebook = nbformat.read(Path("notebooks/00_preflight.ipynb"), as_version=4)
    assert "the operator types its first two words" in notebook.cells[-2].source
    assert said[1][1].endswith("type the first two words of the transcript head: ")
    assert said[2][1].startswith("That is not it: Those are not the first words")
    assert confirmed_mark(checkpoint.head) in repr(result)
    actions = [e.action for e in ctx.workspace.events()]
    assert actions[-2:] == ["checkpoint-answer-refused", "checkpoint-confirmed"]
    # The lab keeps the notebook JupyterLab saved only once it shows this confirmation.
    saved = tmp_path / "lab"
    saved.mkdir()
    (saved / "00_preflight.ipynb").write_text(nbformat.writes(notebook))  # saved too early
    assert keep_saved(ctx.workspace, ctx.actor, saved, PHASES) == [PHASES[0]]
    notebook.cells[-1].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": repr(result)})
    ]
    (saved / "00_preflight.ipynb").write_text(nbformat.writes(notebook))
    assert keep_saved(ctx.workspace, ctx.actor, saved, PHASES) == []
    kept = [e.data["path"] for e in ctx.workspace.events() if e.action == "notebook-kept"]
    assert kept == ["notebooks/00_preflight.ipynb", "notebooks/00_preflight.html"]
    assert repr(result) in ctx.workspace.path(kept[0]).read_text()
    assert keep_saved(ctx.workspace, ctx.actor, saved, PHASES) == []  # kept once


def test_a_project_error_shows_its_sentence_before_the_traceback():
    """IPython shows a CeremonyError through _render_traceback_: sentence, remedy, then the
    traceback (for a bug report), rather than the sentence at the bottom of a traceback."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shown: list[list[str]] = []
    shell._showtraceback = lambda _type, _value, stb: shown.append(stb)
    shell.run_cell(
        "from ceremony.errors import RefusedError\nraise RefusedError('It is wrong.', 'Do this.')"
    )
    [stb] = shown
    assert stb[0] == "\x1b[1;31mRefusedError: It is wrong.\x1b[0m"
    assert stb[1] == "What to do: Do this."
    assert "Traceback (most recent call last)" in stb[-1]


def test_runner_runs_preflight_then_refuses_phases_out_of_order(tmp_path):
    out = io.StringIO()
    options = RunOptions(phases="04", rehearsal=True, auto_confirm=True, qr=False)
    runner = Runner(write_plan(tmp_path), tmp_path / "ws", options, out=out)
    with pytest.raises(RefusedError, match="phase 01 kek is not complete") as info:
        runner.run()
    assert info.value.phase == "04"
    assert "running phase 00 first" in out.getvalue()
    status = phase_status(runner.ws)
    assert set(status) == {"00"} and status["00"].confirmed
    assert (runner.ws.root / "notebooks" / "00_preflight.ipynb").exists()
    assert (runner.ws.root / "notebooks" / "00_preflight.html").exists()
    # Phase 04 did not start: its one line in the transcript is the refusal, with the remedy.
    [refusal] = [e for e in runner.ws.events() if e.phase == "04"]
    assert refusal.action == "phase-refused" and "phase 01 kek" in refusal.data["message"]
    assert refusal.data["remedy"].startswith("Run phase 01 first and confirm its checkpoint")
    # Asking again for 00 does nothing: it is complete and confirmed on this machine.
    again = Runner(runner.plan.path, runner.ws.root, RunOptions(phases="00", rehearsal=True), out)
    assert again.run().skipped == ("00",)


def test_missing_token_stops_the_phase_in_one_line_and_is_recorded(tmp_path):
    from ceremony.softhsm import SoftHsm, find_module

    empty = SoftHsm(tmp_path / "softhsm")
    plan = write_plan(tmp_path, module=find_module(), token="no-such-token")
    options = RunOptions(
        rehearsal=True,
        auto_confirm=True,
        qr=False,
        collect_pins=False,
        kernel_env={**empty.environ(), "CEREMONY_PIN": "1234"},
    )
    runner = Runner(plan, tmp_path / "ws", options, out=io.StringIO())
    with pytest.raises(Exception) as info:
        runner.run()
    assert info.value.phase == "00"
    assert str(info.value).startswith("Phase 00 preflight stopped:")
    assert "no-such-token" in str(info.value) and "\n" not in str(info.value)
    refused = [e for e in runner.ws.events() if e.action == "phase-refused"]
    assert len(refused) == 1 and refused[0].data["error"] == "HsmError"
    assert (runner.ws.root / "notebooks" / "00_preflight.failed.ipynb").exists()


# -- the kernel ------------------------------------------------------------------------------------

PROBE = """
import hashlib, json, os, stat
from ipykernel import get_connection_file
info = json.load(open(get_connection_file()))
ports = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
sockets = [f"{info['ip']}-{info[k]}" for k in ports]
print(json.dumps({
    "transport": info["transport"],
    "unix_sockets": all(stat.S_ISSOCK(os.stat(s).st_mode) for s in sockets),
    "private": oct(os.stat(os.path.dirname(info["ip"])).st_mode & 0o777),
    "pin_sha256": hashlib.sha256(os.environ.get("CEREMONY_PIN", "").encode()).hexdigest(),
    "inherited": os.environ.get("CEREMONY_PIN_INHERITED"),
}))
"""


def test_kernel_talks_over_ipc_sockets_and_gets_pins_only_explicitly(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('plan = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(PROBE)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source = tmp_path / "probe.ipynb"
    nbformat.write(nb, source)
    monkeypatch.setenv("CEREMONY_PIN_INHERITED", "must-not-reach-the-kernel")
    out = io.StringIO()
    output = tmp_path / "out.ipynb"
    execute_notebook(
        source, output, {"plan": "p"}, cwd=tmp_path, env={"CEREMONY_PIN": "4321"}, out=out
    )
    executed = nbformat.read(output, as_version=4)
    result = json.loads(executed.cells[-1].outputs[0]["text"])
    assert result == {
        "transport": "ipc",
        "unix_sockets": True,
        "private": "0o700",
        "pin_sha256": hashlib.sha256(b"4321").hexdigest(),
        "inherited": None,
    }
    assert "4321" not in output.read_text()  # the PIN is no parameter and never printed
    assert "4321" not in out.getvalue()


# -- resume after a killed run ---------------------------------------------------------------------


def token_labels(root: Path, pin: str) -> list[str]:
    """Object labels on the rehearsal HSM token, listed by OpenSC's pkcs11-tool."""
    return sorted(token_objects(root, pin).elements())


@pytest.mark.parametrize(
    ("kill_at", "given_pins"),
    [("key-generated", PINS), ("key-wrapped", PINS), ("key-imported", {})],
)
def test_killed_run_resumes_without_a_second_key_or_import(tmp_path, kill_at, given_pins):
    """Resumed with the PINs set in the environment, or with those the rehearsal generated."""
    root = tmp_path / "r"
    killed_rehearsal(root, kill_at, pins=given_pins)
    assert not (root / "workspace" / "archive.tar").exists()
    pin_file = root / PIN_FILE
    if given_pins:
        assert not pin_file.exists()  # PINs from the environment are never stored
        pins = given_pins
    else:
        assert pin_file.stat().st_mode & 0o777 == 0o600
        pins = json.loads(pin_file.read_text())
        assert sorted(pins) == sorted(PINS)
    resumed = ceremony("rehearse", "--out", str(root), "--resume", env=clean_env(**given_pins))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Rehearsal complete and verified." in resumed.stdout
    archive = root / "workspace" / "archive.tar"
    assert scan_archive(archive, list(pins.values())) == []  # the kept PINs are never sealed
    keys = ["rehearsal-aes", "rehearsal-ec", "rehearsal-ec", "rehearsal-rsa", "rehearsal-rsa"]
    assert token_labels(root, pins["CEREMONY_PIN"]) == keys  # RSA and EC pairs, one AES key
    versions = vault_versions(root)
    assert versions == {"byok-kek": 1, "rehearsal-aes": 1, "rehearsal-ec": 1, "rehearsal-rsa": 1}
    found = events(root / "workspace")
    # Every key was started; one the kill cut off before it reached the token is started again
    # (the token count above shows it was not made twice), and a resumed phase 02 describes again,
    # from the token, a key made before the kill (whether or not its key-generated line was kept).
    started = {e["data"]["name"] for e in found if e["action"] == "key-generating"}
    assert started == {"rehearsal-aes", "rehearsal-ec", "rehearsal-rsa"}
    told = {e["data"]["name"] for e in found if e["action"] in ("key-generated", "key-adopted")}
    assert told == started
    # A resumed phase 04 recognises an import made before the kill (one version, above).
    imported = [e["data"]["name"] for e in found if e["action"] == "key-imported"]
    assert sorted(set(imported)) == ["rehearsal-aes", "rehearsal-ec", "rehearsal-rsa"]
    if kill_at == "key-wrapped":
        # The interrupted attempt's package is never adopted: wrapped again, under a new
        # ephemeral key, and the file imported is the new one.
        wrapped = [e["data"] for e in found if e["action"] == "key-wrapped"]
        first = wrapped[0]
        again = [w for w in wrapped[1:] if w["name"] == first["name"]]
        assert len(again) == 1 and again[0]["byok_sha256"] != first["byok_sha256"]
        byok = root / "workspace" / "keys" / f"{first['name']}.byok"
        assert hashlib.sha256(byok.read_bytes()).hexdigest() == again[0]["byok_sha256"]


def test_resume_needs_the_pins_of_the_first_run(tmp_path):
    (tmp_path / "plan.toml").write_text("")
    done = ceremony("rehearse", "--out", str(tmp_path), "--resume")
    assert done.returncode == 2 and f"{tmp_path / PIN_FILE} does not hold them" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_online_side_never_touches_the_hsm_nor_asks_its_pin(tmp_path, monkeypatch):
    """Phase 00 on the online side, where the plan's PKCS#11 module happens to exist but no token,
    no SoftHSM directory and no PIN are there: it records the online side and touches nothing."""
    from ceremony.softhsm import find_module

    for variable in ("CEREMONY_PIN", "CEREMONY_SO_PIN", "SOFTHSM2_CONF"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)  # nobody to ask a PIN of
    plan = write_plan(tmp_path, module=find_module(), token="not-on-this-machine")
    options = RunOptions(phases="00-01", rehearsal=True, auto_confirm=True, qr=False)
    runner = Runner(plan, tmp_path / "ws", options, out=io.StringIO())
    with pytest.raises(CeremonyError, match=r"Phase 01"):
        runner.run()  # phase 01 cannot reach the (absent) vault: phase 00 did its work first
    record = json.loads((runner.ws.root / "preflight.json").read_text())
    assert record["host"]["side"] == "online" and record["hsm"] == {}
    assert record["host"]["network"] == "cannot reach the vault"
    assert phase_status(runner.ws)["00"].confirmed
