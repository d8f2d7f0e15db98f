#!/usr/bin/env python3
"""The baseline ResGD is measured against: the docs/design.md model and full-batch GD written
the natural way in Python PyTorch (autograd, `p -= lr * g`, the loss read every step),
at the sizes of `resgd bench`. Prints one line per size: median ms per GD step.

Run with Debian's python3-torch (the same LibTorch and BLAS as resgd):
    /usr/bin/python3 bench/baseline.py --sizes small,medium,large
"""
import argparse
import math
import statistics
import time

import torch

# name: (N, n, d, m, d_y, L, dtype, steps) -- the same as lib/resgd/run/bench.cpp
SIZES = {
    "small": (32, 8, 16, 256, 16, 1, torch.float64, 200),
    "medium": (256, 16, 64, 512, 64, 2, torch.float32, 60),
    "large": (1024, 32, 128, 1024, 128, 2, torch.float32, 6),
    "flagship": (8, 8, 64, 512, 1, 1, torch.float64, 200),
}


def make_model(d, m, d_y, L, dtype):
    blocks = []
    for l in range(L):
        out = d_y if l == L - 1 else d
        shapes = [(d, d), (d, d), (d, d), (d, m), (m, out)]
        blocks.append([(torch.randn(*s, dtype=dtype) / math.sqrt(s[0])).requires_grad_() for s in shapes])
    return blocks


def forward(blocks, X, d):
    H = X
    for W_Q, W_K, W_V, W_1, W_2 in blocks:
        Z = (H @ W_Q) @ (H @ W_K).transpose(1, 2) / math.sqrt(d)
        S = torch.softmax(Z, dim=-1)
        G = H + S @ (H @ W_V)                  # attention residual
        out = torch.relu(G @ W_1) @ W_2
        H = out + G if out.shape[-1] == d else out  # FFN residual where the width allows
    return H


def seconds_per_step(size, repeats):
    N, n, d, m, d_y, L, dtype, steps = SIZES[size]
    torch.manual_seed(0)
    X = torch.randn(N, n, d, dtype=dtype) / math.sqrt(d)
    Y = torch.randn(N, n, d_y, dtype=dtype) / math.sqrt(d_y)
    per_step = []
    for r in range(repeats + 1):  # r = 0 warms up
        blocks = make_model(d, m, d_y, L, dtype)
        params = [p for b in blocks for p in b]
        losses = []
        start = time.perf_counter()
        for _ in range(steps):
            loss = 0.5 * ((forward(blocks, X, d) - Y) ** 2).sum()
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p -= 1e-6 * g
            losses.append(loss.item())
        if r > 0:
            per_step.append((time.perf_counter() - start) / steps)
    return statistics.median(per_step)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"python baseline: torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for size in args.sizes.split(","):
        print(f"{size} {seconds_per_step(size, args.repeats) * 1e3:.3f} ms/step", flush=True)


if __name__ == "__main__":
    main()
