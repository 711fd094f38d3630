"""soup.py - average the weights of models fine-tuned from one start (a uniform "model soup").

Usage:

  /usr/bin/python3 weights/soup.py --out SOUP.safetensors A.safetensors B.safetensors [...]

Wortsman et al., "Model soups" (ICML 2022): models fine-tuned from the same weights usually lie
in one basin, and the element-wise mean of their weights is often as accurate as their ensemble
at the cost of one model. Every tensor is averaged as stored - the SSM parameters in the
parameterisation they were trained in (inv_dt, A_real, A_imag, B, C, D), and the BatchNorm
running statistics too - in float64, written back in the ingredients' dtype. The mean is uniform:
choosing ingredients by their validation score (a "greedy soup") would tune the model on the
validation set.

The ingredients must be one architecture: the same tensors with the same shapes and dtypes and
the same metadata except 'training' (the soup records each ingredient's) and 'thresholds'
(per-keyword live thresholds are tuned for one model, so the soup has none until
set_thresholds.py gives it its own). Averaging models that did not start from the same weights
gives a broken model: the script cannot check that, so it checks what it can and says so in the
metadata.

Exit status: 0, or 2 on bad arguments or ingredients that do not fit together.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s4twin import load_safetensors, save_safetensors  # noqa: E402

PER_MODEL = ("training", "thresholds")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="safetensors file to write")
    ap.add_argument("models", nargs="+", help="two or more s4kws safetensors models")
    a = ap.parse_args()
    if len(a.models) < 2:
        print("soup: give at least two models to average", file=sys.stderr)
        return 2
    loaded = []
    for p in a.models:
        try:
            loaded.append(load_safetensors(p))
        except (OSError, ValueError) as e:  # load_safetensors' two kinds of failure
            print(f"soup: cannot read {p} as a safetensors model: {e}", file=sys.stderr)
            return 2
    t0, m0 = loaded[0]
    for p, (t, m) in zip(a.models[1:], loaded[1:]):
        if set(t) != set(t0):
            diff = sorted(set(t) ^ set(t0))
            print(f"soup: {p} has other tensors than {a.models[0]} (e.g. {diff[0]})", file=sys.stderr)
            return 2
        bad = [k for k in t0 if t[k].shape != t0[k].shape or t[k].dtype != t0[k].dtype]
        if bad:
            print(f"soup: {p}: tensor {bad[0]} is {t[bad[0]].dtype}{list(t[bad[0]].shape)}, "
                  f"not {t0[bad[0]].dtype}{list(t0[bad[0]].shape)} as in {a.models[0]}", file=sys.stderr)
            return 2
        keys = (set(m) | set(m0)) - set(PER_MODEL)
        bad = sorted(k for k in keys if m.get(k) != m0.get(k))
        if bad:
            print(f"soup: {p}: metadata '{bad[0]}' differs from {a.models[0]} "
                  f"({m.get(bad[0])!r:.60} vs {m0.get(bad[0])!r:.60})", file=sys.stderr)
            return 2
    out = {}
    for k in t0:
        acc = np.zeros(t0[k].shape, np.float64)
        for t, _ in loaded:
            acc += t[k]
        out[k] = (acc / len(loaded)).astype(t0[k].dtype)
    meta = {k: v for k, v in m0.items() if k not in PER_MODEL}
    ingredients = []
    for p, (_, m) in zip(a.models, loaded):
        try:
            tr = json.loads(m.get("training", "null"))
        except ValueError:
            tr = None
        ingredients.append({"file": os.path.basename(p), "training": tr})
    meta["training"] = json.dumps({"soup": "uniform mean of the weights of models fine-tuned "
                                   "from one start", "ingredients": ingredients},
                                  separators=(",", ":"))
    save_safetensors(a.out, out, meta)
    dropped = sum("thresholds" in m for _, m in loaded)
    print(f"soup: {a.out}: mean of {len(loaded)} models, {len(out)} tensors, "
          f"{sum(v.size for v in out.values())} values"
          + (f"; their live thresholds dropped ({dropped} had some)" if dropped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
