"""Sealing throughput next to raw AES-GCM from `cryptography`, on the same buffer, same run.

Usage: .venv/bin/python benchmarks/sealing.py [--mib 256] [--chunk-kib 256] [--repeat 5]

Figures (MiB/s of plaintext, best of --repeat rounds; rounds interleave all figures so load from
other processes hits them alike):
  raw one call     AESGCM.encrypt/decrypt over the whole buffer (allocates the output)
  raw chunked      AESGCM.encrypt_into/decrypt_into per chunk into a reused buffer (crypto only)
  stream (memory)  SealedWriter into a null sink / SealedReader from memory (format + crypto)
  plain file       chunk-sized writes, fsync, rename / Path.read_bytes (the same I/O, no crypto)
  sealed file      write_sealed (fsync) / read_sealed
Ratios: stream vs raw chunked (the crypto ceiling) and vs raw one call; sealed file vs raw one
call plus plain file I/O (what storing with bare AES-GCM would cost).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cvfl.fsutil import atomic_write_bytes, atomic_writer
from cvfl.sealing import (
    DEFAULT_CHUNK_SIZE,
    SealedReader,
    SealedWriter,
    new_key_file,
    read_sealed,
    write_sealed,
)

TAG = 16


class NullSink:
    def write(self, data: memoryview) -> int:
        return len(data)


def raw_cases(buf: bytes, chunk: int) -> dict[str, Callable[[], object]]:
    aead = AESGCM(AESGCM.generate_key(256))
    nonce = bytes(12)
    whole_ct = aead.encrypt(nonce, buf, None)
    view, n = memoryview(buf), len(buf) // chunk
    records = memoryview(bytearray(n * (chunk + TAG)))
    for i in range(n):
        rec = records[i * (chunk + TAG) : (i + 1) * (chunk + TAG)]
        aead.encrypt_into(i.to_bytes(12, "big"), view[i * chunk : (i + 1) * chunk], None, rec)
    out, plain = memoryview(bytearray(chunk + TAG)), memoryview(bytearray(chunk))

    def enc_chunks() -> None:
        for i in range(n):
            aead.encrypt_into(i.to_bytes(12, "big"), view[i * chunk : (i + 1) * chunk], None, out)

    def dec_chunks() -> None:
        for i in range(n):
            rec = records[i * (chunk + TAG) : (i + 1) * (chunk + TAG)]
            aead.decrypt_into(i.to_bytes(12, "big"), rec, None, plain)

    return {
        "enc raw one call": lambda: aead.encrypt(nonce, buf, None),
        "dec raw one call": lambda: aead.decrypt(nonce, whole_ct, None),
        "enc raw chunked": enc_chunks,
        "dec raw chunked": dec_chunks,
    }


def write_plain(path: Path, buf: bytes, chunk: int) -> None:
    """The same I/O pattern as a sealed write (chunk-sized writes, fsync, rename), no crypto."""
    view = memoryview(buf)
    with atomic_writer(path) as handle:
        for i in range(0, len(view), chunk):
            handle.write(view[i : i + chunk])


def sealed_cases(buf: bytes, chunk: int, folder: Path) -> dict[str, Callable[[], object]]:
    keys = new_key_file(folder / "bench.key")
    sink = io.BytesIO()
    writer = SealedWriter(sink, purpose="bench", keys=keys, chunk_size=chunk)
    writer.write(buf)
    writer.finish()
    blob = sink.getvalue()
    sealed, plain = folder / "bench.sealed", folder / "bench.plain"
    write_sealed(sealed, buf, purpose="bench", keys=keys, chunk_size=chunk)
    atomic_write_bytes(plain, buf)
    if read_sealed(sealed, purpose="bench", keys=keys) != buf:
        raise SystemExit("round trip failed")

    def seal_stream() -> None:
        w = SealedWriter(NullSink(), purpose="bench", keys=keys, chunk_size=chunk)  # type: ignore[arg-type]
        w.write(buf)
        w.finish()

    return {
        "enc stream (memory)": seal_stream,
        "dec stream (memory)": lambda: SealedReader(
            io.BytesIO(blob), purpose="bench", keys=keys
        ).verify_rest(),
        "enc plain file": lambda: write_plain(plain, buf, chunk),
        "dec plain file": plain.read_bytes,
        "enc sealed file": lambda: write_sealed(
            sealed, buf, purpose="bench", keys=keys, chunk_size=chunk
        ),
        "dec sealed file": lambda: read_sealed(sealed, purpose="bench", keys=keys),
    }


def measure(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


ROWS = [
    ("raw AES-GCM, one call", "raw one call"),
    ("raw AES-GCM, chunked", "raw chunked"),
    ("sealed stream (memory)", "stream (memory)"),
    ("plain file I/O", "plain file"),
    ("sealed file", "sealed file"),
]


def report(secs: dict[str, float], mib: float) -> None:
    print(f"  {'MiB/s':<26} {'seal/encrypt':>13} {'unseal/decrypt':>15}")
    for label, key in ROWS:
        enc, dec = mib / secs[f"enc {key}"], mib / secs[f"dec {key}"]
        print(f"  {label:<26} {enc:>13.0f} {dec:>15.0f}")
    for label, num, den in [
        ("sealed stream / raw chunked", ["raw chunked"], "stream (memory)"),
        ("sealed stream / raw one call", ["raw one call"], "stream (memory)"),
        (
            "sealed file / (raw one call + plain file)",
            ["raw one call", "plain file"],
            "sealed file",
        ),
    ]:
        ratios = [sum(secs[f"{d} {n}"] for n in num) / secs[f"{d} {den}"] for d in ("enc", "dec")]
        print(f"  ratio {label:<42} seal {ratios[0]:.2f}   unseal {ratios[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="buffer size in MiB")
    parser.add_argument(
        "--chunk-kib", type=int, default=DEFAULT_CHUNK_SIZE // 1024, help="chunk size in KiB"
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best kept)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the file figures")
    args = parser.parse_args()
    size, chunk = args.mib * 1024 * 1024, args.chunk_kib * 1024
    buf = os.urandom(size)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        cases = raw_cases(buf, chunk) | sealed_cases(buf, chunk, Path(tmp))
        secs = measure(cases, args.repeat)
    print(f"buffer {args.mib} MiB, chunk {args.chunk_kib} KiB, best of {args.repeat} rounds")
    report(secs, size / (1024 * 1024))


if __name__ == "__main__":
    main()
