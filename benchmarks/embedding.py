"""The wide&deep lookup's forward + backward: PyTorch's own embedding backward against cvfl's.

Times one training batch's lookup (``--batch`` rows x ``--slots`` slots into a 101 x 16 table per
slot, one intra-op thread) through ``nn.Embedding`` and through :func:`cvfl.models.nets.lookup`
(a scatter-add backward in index order), interleaved, medians; checks both give the same
gradient and prints, last, ``ratio cvfl/pytorch: <value>``.

    .venv/bin/python benchmarks/embedding.py [--batch 256] [--slots 512] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from cvfl.models.nets import lookup

VOCAB, DIM = 101, 16


def timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--slots", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    table = nn.Embedding(args.slots * VOCAB, DIM)
    index = torch.randint(0, VOCAB, (args.batch, args.slots)) + torch.arange(args.slots) * VOCAB
    upstream = torch.randn(args.batch, args.slots, DIM)
    grads: dict[str, torch.Tensor] = {}

    def pytorch() -> None:
        grads["pytorch"] = torch.autograd.grad(table(index), table.weight, upstream)[0]

    def cvfl() -> None:
        grads["cvfl"] = torch.autograd.grad(lookup(table, index), table.weight, upstream)[0]

    runs: dict[str, list[float]] = {"pytorch": [], "cvfl": []}
    for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
        runs["pytorch"].append(timed(pytorch))
        runs["cvfl"].append(timed(cvfl))
    if not torch.allclose(grads["cvfl"], grads["pytorch"], rtol=0, atol=1e-6):
        raise SystemExit("the two backward passes disagree")
    median = {k: statistics.median(v) * 1e3 for k, v in runs.items()}
    print(f"{args.batch} rows x {args.slots} slots, {VOCAB} x {DIM} per slot, 1 thread")
    print(f"nn.Embedding forward + backward: {median['pytorch']:7.2f} ms")
    print(f"cvfl lookup forward + backward:  {median['cvfl']:7.2f} ms")
    print(f"ratio cvfl/pytorch: {median['cvfl'] / median['pytorch']:.3f}")


if __name__ == "__main__":
    main()
