"""bench_localvault: N concurrent Azure SDK clients against the local vault, against bare TLS.

Run from the repository root: python -m bench.bench_localvault [--clients 16] [--gets 20]. The vault
runs as `ceremony localvault serve` in its own process on a throwaway state directory.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from azure.keyvault.keys import JsonWebKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from ceremony.localvault.access import LocalVaultAccess

P99_TARGET_MS = 50  # the p99 of get_key the project aims for at 16 clients on a 2-core machine


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def byok_for(kek, payload: bytes) -> bytes:
    """A .byok file made with pyca/cryptography for the KEK (a KeyVaultKey)."""
    n, e = (int.from_bytes(v, "big") for v in (kek.key.n, kek.key.e))
    transport = os.urandom(32)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
    wrapped = rsa.RSAPublicNumbers(e, n).public_key().encrypt(transport, oaep)
    ciphertext = wrapped + aes_key_wrap_with_padding(transport, payload)
    document = {
        "schema_version": "1.0.0",
        "header": {"kid": kek.id, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
        "ciphertext": base64.urlsafe_b64encode(ciphertext).rstrip(b"=").decode(),
        "generator": "bench_localvault",
    }
    return json.dumps(document).encode()


def ec_pkcs8() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def run_concurrently(
    clients: int, work: Callable[[int], dict[str, list[float]]]
) -> tuple[dict[str, list[float]], float]:
    """Run `work(index)` in `clients` threads; merged latencies per operation and wall time."""
    results: list[dict[str, list[float]]] = [{} for _ in range(clients)]
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    merged: dict[str, list[float]] = {}
    for result in results:
        for name, samples in result.items():
            merged.setdefault(name, []).extend(samples)
    return merged, wall


def timed(samples: list[float], call: Callable[[], object]) -> None:
    started = time.perf_counter()
    call()
    samples.append(time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent SDK clients")
    parser.add_argument("--gets", type=int, default=20, help="get-key calls per client")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-localvault-") as tmp:
        state = Path(tmp) / "state"
        server = subprocess.Popen(
            [sys.executable, "-m", "ceremony", "localvault", "serve", "--state", str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            access = LocalVaultAccess(state)
            setup = access.key_client()
            kek = setup.create_rsa_key("kek", size=2048, hardware_protected=True,
                                       key_operations=["import"])  # fmt: skip
            setup.create_ec_key("target", curve="P-256", hardware_protected=True)
            packages = [byok_for(kek, ec_pkcs8()) for _ in range(args.clients)]

            def bare(index: int) -> dict[str, list[float]]:
                samples: list[float] = []
                ca = str(access.ca_path)
                with requests.Session() as session:
                    for _ in range(args.gets + 1):
                        timed(
                            samples, lambda: session.get(f"{url}/keys?api-version=7.5", verify=ca)
                        )
                return {"bare TLS GET (401)": samples}

            def sdk(index: int) -> dict[str, list[float]]:
                client = access.key_client()
                gets: list[float] = []
                imports: list[float] = []
                client.get_key("target")  # first call carries the bearer challenge
                for _ in range(args.gets):
                    timed(gets, lambda: client.get_key("target"))
                jwk = JsonWebKey(kty="EC-HSM", crv="P-256", t=packages[index])
                timed(imports, lambda: client.import_key(f"imported-{index}", jwk))
                return {"SDK get_key": gets, "SDK BYOK import": imports}

            bare_samples, bare_wall = run_concurrently(args.clients, bare)
            sdk_samples, sdk_wall = run_concurrently(args.clients, sdk)
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"local vault benchmark: {args.clients} concurrent clients, {args.gets} get-key each")
    print(f"{'operation':<22}{'count':>7}{'p50 ms':>10}{'p99 ms':>10}")
    for name, samples in {**bare_samples, **sdk_samples}.items():
        print(
            f"{name:<22}{len(samples):>7}{percentile(samples, 0.5) * 1000:>10.2f}"
            f"{percentile(samples, 0.99) * 1000:>10.2f}"
        )
    sdk_ops = sum(len(s) for s in sdk_samples.values()) + args.clients
    bare_ops = sum(len(s) for s in bare_samples.values())
    print(
        f"throughput: SDK {sdk_ops / sdk_wall:.0f} ops/s, bare TLS {bare_ops / bare_wall:.0f} req/s"
    )
    ratio = percentile(sdk_samples["SDK get_key"], 0.5) / percentile(
        bare_samples["bare TLS GET (401)"], 0.5
    )
    print(f"ratio SDK get_key p50 / bare TLS GET p50: {ratio:.1f}x")
    p99 = percentile(sdk_samples["SDK get_key"], 0.99) * 1000
    verdict = "within" if p99 < P99_TARGET_MS else "over"
    print(f"SDK get_key p99 at {args.clients} clients: {p99:.1f} ms, {verdict} {P99_TARGET_MS} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
