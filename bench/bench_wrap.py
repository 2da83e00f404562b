"""bench_wrap: what generating and wrapping N keys costs, against bare generation in the same token.

Run from the repository root: python -m bench.bench_wrap [--n 50]. Uses a throwaway SoftHSM2 token
(or --module/--token with CEREMONY_PIN) and a software KEK; never touches a real ceremony key.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony.hsm import HsmSession, open_session
from ceremony.keyspec import KeySpec
from ceremony.softhsm import SoftHsm

TARGET = 1.2
SPECS = (KeySpec("RSA-HSM", size=2048), KeySpec("EC-HSM", curve="P-256"))


@dataclass
class Timing:
    """Seconds spent per phase for one key type."""

    bare: float = 0.0
    generate: float = 0.0
    wrap: float = 0.0
    setup: float = 0.0
    samples: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.setup + self.generate + self.wrap


def kek_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def measure(session: HsmSession, n: int, kek: bytes) -> dict[str, Timing]:
    """Interleave bare generation and generate+wrap, so drift hits both sides alike."""
    timings = {spec.describe(): Timing() for spec in SPECS}
    start = time.perf_counter()
    self_test = session.self_test()
    setup = time.perf_counter() - start
    for spec in SPECS:
        timing = timings[spec.describe()]
        timing.setup = setup / len(SPECS)  # the self-test runs once per session, shared
        for i in range(n):
            start = time.perf_counter()
            session.generate(spec, f"bare-{spec.kty}-{i}")
            timing.bare += time.perf_counter() - start
            start = time.perf_counter()
            session.generate(spec, f"byok-{spec.kty}-{i}")
            middle = time.perf_counter()
            session.wrap_for_byok(f"byok-{spec.kty}-{i}", kek, self_test)
            end = time.perf_counter()
            timing.generate += middle - start
            timing.wrap += end - middle
    return timings


@contextmanager
def token(args: argparse.Namespace) -> Iterator[HsmSession]:
    if args.module:
        with open_session(args.module, args.token, pin=os.environ["CEREMONY_PIN"]) as session:
            yield session
        return
    with tempfile.TemporaryDirectory() as tmp:
        hsm = SoftHsm(Path(tmp) / "softhsm")
        hsm.activate()
        pin = secrets.token_hex(8)
        hsm.create_token("bench", pin)
        with open_session(hsm.module_path, "bench", pin=pin) as session:
            yield session


def report(timings: dict[str, Timing], n: int) -> float:
    print(
        f"{'key type':<14}{'n':>5}{'bare gen s':>12}{'gen s':>10}{'wrap s':>10}{'total s':>10}"
        f"{'ratio':>8}"
    )
    bare_all = total_all = 0.0
    for name, t in timings.items():
        print(
            f"{name:<14}{n:>5}{t.bare:>12.3f}{t.generate:>10.3f}{t.wrap:>10.3f}{t.total:>10.3f}"
            f"{t.total / t.bare:>8.3f}"
        )
        bare_all += t.bare
        total_all += t.total
    ratio = total_all / bare_all
    wrap_all = sum(t.wrap + t.setup for t in timings.values())
    gen_all = sum(t.generate for t in timings.values())
    print(
        f"{'all':<14}{n * len(timings):>5}{bare_all:>12.3f}{gen_all:>10.3f}{wrap_all:>10.3f}"
        f"{total_all:>10.3f}{ratio:>8.3f}"
    )
    print(
        f"ratio of total (self-test + generate + wrap) to bare generation: {ratio:.3f}x "
        f"(target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})"
    )
    print(f"wrap overhead over the same run's generation: {(gen_all + wrap_all) / gen_all:.3f}x")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="keys of each type (default 50)")
    parser.add_argument("--module", help="PKCS#11 module (default: a throwaway SoftHSM2 token)")
    parser.add_argument("--token", help="token label with --module; PIN from CEREMONY_PIN")
    args = parser.parse_args()
    kek = kek_pem()
    with token(args) as session:
        timings = measure(session, args.n, kek)
    report(timings, args.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
