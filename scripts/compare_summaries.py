#!/usr/bin/env python3
"""Compares two output directories of the same sweep run by run (their runs/**/summary.json).

    compare_summaries.py A_DIR B_DIR TOL [--labels A,B] [--device-a PREFIX]

Each run must have the same status and iteration count in both, and its initial and final
loss, linear rate, per-block cond_g, sigma_min_g and cond_g_final, and its sharpness values
must agree to TOL relative. --device-a checks that A's runs ran on that device (e.g. cuda).
Prints one row per run and a last line 'SUMMARY k/n runs agree; ...'; exits 1 on any
mismatch. scripts/gpu_check.sh (cuda against cpu) and scripts/torch2_check.sh (LibTorch
2.x against 1.13) use it.
"""
import argparse
import json
import math
import pathlib
import sys


def rel(a, b):
    if a == b or (a is None and b is None):
        return 0.0
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a_dir", type=pathlib.Path)
    parser.add_argument("b_dir", type=pathlib.Path)
    parser.add_argument("tol", type=float)
    parser.add_argument("--labels", default="a,b", help="names of A and B in the table")
    parser.add_argument("--device-a", default=None, help="A's runs must have run on this device")
    args = parser.parse_args()
    label_a, label_b = args.labels.split(",")

    paths = sorted(p.relative_to(args.b_dir) for p in args.b_dir.glob("runs/**/summary.json"))
    if not paths:
        print("no runs/**/summary.json under", args.b_dir)
        return 1
    bad, worst = 0, 0.0
    print(f"{'run':<44} {'status':<10} {'iters':>11} {'final_loss ' + label_a:>18} {label_b:>12} "
          f"{'rel':>8} {'cond_g rel':>10}")
    for p in paths:
        b = json.loads((args.b_dir / p).read_text())
        try:
            a = json.loads((args.a_dir / p).read_text())
        except OSError:
            print(f"{str(p.parent):<44} missing in {label_a}")
            bad += 1
            continue
        if args.device_a and not a.get("device", "").startswith(args.device_a):
            print(f"{str(p.parent):<44} ran on {a.get('device')}, not {args.device_a}")
            bad += 1
        errs = [rel(a[k], b[k]) for k in ("initial_loss", "final_loss", "linear_rate")]
        errs += [rel(x, y) for k in ("cond_g", "sigma_min_g", "cond_g_final") for x, y in zip(a[k], b[k])]
        errs += [rel(a[k], b[k]) for k in ("sharpness", "sharpness_max", "sharpness_final")]
        e = max(errs)
        cond = max(rel(x, y) for x, y in zip(a["cond_g"], b["cond_g"]))
        same = a["status"] == b["status"] and a["iters"] == b["iters"]
        ok = same and e <= args.tol
        bad += 0 if ok else 1
        worst = max(worst, e)
        print(f"{str(p.parent):<44} {b['status']:<10} {str(a['iters']) + '/' + str(b['iters']):>11} "
              f"{a['final_loss']:>18.6e} {b['final_loss']:>12.6e} {e:>8.1e} {cond:>10.1e}"
              f"{'' if ok else '  MISMATCH'}")
    print(f"SUMMARY {len(paths) - bad}/{len(paths)} runs agree; worst relative difference {worst:.1e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
