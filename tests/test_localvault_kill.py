"""The local vault killed under load: 16 Azure SDK clients import and read keys while the vault
process (`ceremony localvault serve`) is SIGKILLed and restarted several times. Afterwards every
import the vault acknowledged is there with the version it answered, no key is stored twice, and
the state opens cleanly. Loopback only; bounded by KILLS and the seconds between them."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from azure.core.exceptions import IncompleteReadError, ServiceRequestError, ServiceResponseError
from azure.keyvault.keys import JsonWebKey
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.localvault import LocalVault
from ceremony.localvault.access import LocalVaultAccess

CLIENTS = 16
KILLS = 4
SEED = 14
# A request to a killed vault fails at the connection or mid-answer; the client never resends it
# (retry_total=0), so a second stored version could only come from the vault itself.
UNANSWERED = (ServiceRequestError, ServiceResponseError, IncompleteReadError)


class ServedVault:
    """`ceremony localvault serve` in its own process group, killed and restarted at will."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ceremony", "localvault", "serve", "--state", str(self.state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        url = self.process.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:"), f"the vault did not start: {url!r}"
        return url

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@dataclass
class Load:
    """What the clients saw: acknowledged imports (name -> version, public x) and the rest."""

    acknowledged: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    reads: int = 0
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ec_jwk() -> JsonWebKey:
    numbers = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    public = numbers.public_numbers
    return JsonWebKey(
        kty="EC",
        crv="P-256",
        key_ops=["sign", "verify"],
        x=public.x.to_bytes(32, "big"),
        y=public.y.to_bytes(32, "big"),
        d=numbers.private_value.to_bytes(32, "big"),
    )


def client_loop(index: int, access: LocalVaultAccess, load: Load, stop: threading.Event) -> None:
    """Import a new key under a new name, then read back one this client imported, until stopped."""
    client = access.key_client(retry_total=0, connection_timeout=2, read_timeout=10)
    mine: list[str] = []
    rng = random.Random(SEED * 100 + index)
    attempt = 0
    while not stop.is_set():
        name = f"load-{index}-{attempt}"
        attempt += 1
        jwk = ec_jwk()
        try:
            key = client.import_key(name, jwk, hardware_protected=True)
        except UNANSWERED:
            with load.lock:
                load.unanswered.add(name)
            time.sleep(0.05)
            continue
        with load.lock:
            load.acknowledged[name] = (key.properties.version, bytes(jwk.x))
        mine.append(name)
        chosen = rng.choice(mine)
        try:
            read = client.get_key(chosen)
        except UNANSWERED:
            continue
        with load.lock:
            load.reads += 1
            version, x = load.acknowledged[chosen]
            if read.properties.version != version or bytes(read.key.x) != x:
                load.wrong.append(chosen)


def test_killed_under_load_keeps_every_acknowledged_import_once(tmp_path) -> None:
    state = tmp_path / "state"
    vault = ServedVault(state)
    url = vault.start()
    access = LocalVaultAccess(state)
    load, stop = Load(), threading.Event()
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            client_loop(index, access, load, stop)
        except BaseException as exc:  # an answer other than a cut connection fails the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    pauses = random.Random(SEED)
    acknowledged_before_kill = []
    try:
        for _ in range(KILLS):
            time.sleep(pauses.uniform(1.0, 2.0))
            vault.kill()
            acknowledged_before_kill.append(len(load.acknowledged))
            assert vault.start() == url  # same port, so the kids the clients hold stay valid
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        vault.stop()
    assert errors == []
    assert load.wrong == []
    # The load was real: imports were acknowledged between every two kills, and reads answered.
    counts = [0, *acknowledged_before_kill]
    assert all(later > earlier for earlier, later in pairwise(counts))
    assert load.reads >= len(load.acknowledged) // 2

    with sqlite3.connect(state / "vault.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with LocalVault(state) as reopened:
        client = reopened.key_client()
        stored = {
            p.name: [v.version for v in client.list_properties_of_key_versions(p.name)]
            for p in client.list_properties_of_keys()
        }
    lost = sorted(set(load.acknowledged) - set(stored))
    twice = sorted(name for name, versions in stored.items() if len(versions) != 1)
    assert lost == [] and twice == []
    assert {name: stored[name][0] for name in load.acknowledged} == {
        name: version for name, (version, _) in load.acknowledged.items()
    }
    # Whatever else is stored was sent and its answer cut by a kill: committed, never invented.
    assert set(stored) - set(load.acknowledged) <= load.unanswered
    committed = len(set(stored) - set(load.acknowledged))
    print(
        f"vault kill: {CLIENTS} clients, {KILLS} SIGKILLs: {len(load.acknowledged)} imports "
        f"acknowledged, {len(load.unanswered)} unanswered ({committed} of them committed), "
        f"{load.reads} reads; {len(lost)} lost, {len(twice)} stored twice"
    )
