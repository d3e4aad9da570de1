"""Cost of attestation evidence: make and verify simulated quotes, verify the real DCAP quote.

Run: .venv/bin/python benchmarks/attestation_verify.py [--repeat N]
Prints median microseconds per operation and each one's ratio to parsing a quote (baseline,
measured in the same run). Needs ../shared/testdata for the DCAP figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cvfl.attestation import (
    AcceptedIdentity,
    DcapVerifier,
    FileCollateral,
    Policy,
    SimulatedProvider,
    SimulatedVerifier,
    measure_code,
    parse_quote,
)
from cvfl.attestation.localcheck import check_quote_locally

SGX = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "sgx"
T_VALID = 1750334171


def median_us(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    provider = SimulatedProvider()
    sim_quote = provider.quote(bytes(64))
    verifier = SimulatedVerifier()
    evidence = verifier.verify(sim_quote)
    policy = Policy(
        identities=(AcceptedIdentity(mr_enclave=provider.mr_enclave),), allow_simulated=True
    )
    rows: list[tuple[str, float]] = [
        ("parse quote (baseline)", median_us(lambda: parse_quote(sim_quote), args.repeat)),
        ("measure cvfl package", median_us(measure_code, max(10, args.repeat // 10))),
        ("simulated quote", median_us(lambda: provider.quote(bytes(64)), args.repeat)),
        ("simulated verify", median_us(lambda: verifier.verify(sim_quote), args.repeat)),
        ("policy check", median_us(lambda: policy.check(evidence), args.repeat)),
    ]
    real = SGX / "dcap_quote_v3.bin"
    if real.is_file():
        raw = real.read_bytes()
        dcap = DcapVerifier(FileCollateral(SGX / "dcap_quote_v3_collateral.json"))
        parsed = parse_quote(raw)
        rows.append(
            ("DCAP local checks", median_us(lambda: check_quote_locally(parsed), args.repeat))
        )
        rows.append(
            ("DCAP verify (all)", median_us(lambda: dcap.verify(raw, at=T_VALID), args.repeat))
        )
    else:
        print(f"(DCAP figures skipped: {real} is absent)")
    base = rows[0][1]
    print(f"{'operation':<28}{'median us':>12}{'x parse':>10}")
    for name, value in rows:
        print(f"{name:<28}{value:>12.1f}{value / base:>10.1f}")


if __name__ == "__main__":
    main()
