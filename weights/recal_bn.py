"""recal_bn.py - recompute a model's BatchNorm statistics for its own weights.

Usage:

  /usr/bin/python3 weights/recal_bn.py --model IN.safetensors --out OUT.safetensors \
      --data SC/train --noise SC/_background_noise_ --synth CACHE/synth --cache CACHE/clips \
      [--batches 400] [--seed 15] [--context 24000] [--real-p 0.8] [--thin-real-p 0.4] \
      [--band-p 0.4]

train.py --ema exports the moving average of the weights together with the moving average of
the BatchNorm running statistics, and the statistics were gathered by the raw weights of each
step, not by the averaged ones. As SWA's update_bn (Izmailov et al., "Averaging Weights Leads
to Wider Optima", UAI 2018), this script keeps every weight and recomputes only the running
mean and variance of every BatchNorm: reset, then train-mode forward passes without gradients
over --batches batches of training examples built exactly as train.py builds them (its Maker,
with the stage's --context, --real-p, --thin-real-p, --band-p, ...), averaged with equal weight
per batch (momentum None). Nothing is learned, so the only data it sees is the training data.
A soup of BatchNorm networks (soup.py) is the other case it is meant for.

Writes OUT with the same metadata plus training.bn_recal = {batches, seed, ...}, less any tuned
'thresholds' (set_thresholds.py: they were tuned for the old statistics); prints the largest
change of any running mean / variance. Exit status: 0, or 2 on bad arguments.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s4twin  # noqa: E402
import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="s4kws safetensors model to recalibrate")
    ap.add_argument("--out", required=True, help="safetensors file to write")
    ap.add_argument("--data", required=True, help="Speech Commands-layout training folder")
    ap.add_argument("--noise", required=True, help="folder of background-noise files")
    ap.add_argument("--synth", action="append", default=[], help="extra (synthetic) clip folders")
    ap.add_argument("--cache", default=None, help="clip cache folder (train.py's --cache)")
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--context", type=int, default=0,
                    help="samples before the 1 s window (default: the model's preroll)")
    ap.add_argument("--real-p", type=float, default=0.65)
    ap.add_argument("--thin-real-p", type=float, default=0.4)
    ap.add_argument("--band-p", type=float, default=0.12)
    ap.add_argument("--eq-p", type=float, default=0.0)
    ap.add_argument("--mask-p", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.batches < 1 or a.batch < 2:
        print("recal_bn: --batches must be >= 1 and --batch >= 2", file=sys.stderr)
        sys.exit(2)
    for name in ("real_p", "thin_real_p", "band_p", "eq_p", "mask_p"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            print(f"recal_bn: --{name.replace('_', '-')} must be a probability (0 to 1)",
                  file=sys.stderr)
            sys.exit(2)

    for d in [a.data, a.noise] + a.synth:
        if not os.path.isdir(d):
            print(f"recal_bn: {d}: no such folder", file=sys.stderr)
            sys.exit(2)

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    try:
        model = s4twin.load_safetensors_model(a.model)
    except (OSError, KeyError, ValueError) as e:
        print(f"recal_bn: cannot read {a.model} as a safetensors model: {e}", file=sys.stderr)
        sys.exit(2)
    cfg = model.cfg
    if cfg["norm"] != "batch":
        print(f"recal_bn: {a.model} has no BatchNorm (norm '{cfg['norm']}')", file=sys.stderr)
        sys.exit(2)
    labels = cfg["labels"]
    context = a.context or cfg["preroll"]
    if context + train.W > cfg["l_max"]:
        print(f"recal_bn: --context {context} + 1 s exceeds the model's l_max {cfg['l_max']}",
              file=sys.stderr)
        sys.exit(2)

    t0 = time.time()
    real, synth, noises, _ = train.load_pools(a.data, a.synth, a.noise, labels, a.cache)
    if not noises or not any(real[l] or synth[l] for l in labels if l != "_silence_"):
        print(f"recal_bn: no noise files in {a.noise} or no clips of the model's labels in "
              f"{a.data}", file=sys.stderr)
        sys.exit(2)
    rng = np.random.default_rng(a.seed)
    maker = train.Maker(labels, real, synth, noises, context, rng, a.real_p, a.band_p, 0.0,
                        a.eq_p, a.mask_p, a.thin_real_p)
    cw = train.class_weights(labels)
    print(f"data loaded in {time.time() - t0:.0f} s", flush=True)

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                                 # cumulative: every batch counts equally
    model.train()
    t0 = time.time()
    with torch.no_grad():
        for i in range(a.batches):
            x, _, _ = maker.batch(a.batch, cw)            # (B, context + W)
            model(x)
            if (i + 1) % 50 == 0:
                print(f"batch {i + 1}/{a.batches} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    dm = max(float((m.running_mean - b[0]).abs().max()) for m, b in zip(bns, before))
    dv = max(float(((m.running_var + 1e-5) / (b[1] + 1e-5)).log().abs().max())
             for m, b in zip(bns, before))
    print(f"{len(bns)} BatchNorms: largest |mean change| {dm:.4g}, "
          f"largest |log var ratio| {dv:.4g}")

    tr = cfg.get("training", "{}")
    try:
        tr = json.loads(tr) if isinstance(tr, str) else dict(tr)
    except ValueError:                                    # not ours: keep it, as text
        tr = {"earlier": tr}
    if not isinstance(tr, dict):
        tr = {"earlier": tr}
    tr["bn_recal"] = {"from": os.path.basename(a.model), "batches": a.batches, "batch": a.batch,
                      "seed": a.seed, "context": context, "real_p": a.real_p,
                      "thin_real_p": a.thin_real_p, "band_p": a.band_p,
                      **({"eq_p": a.eq_p} if a.eq_p > 0 else {}),
                      **({"mask_p": a.mask_p} if a.mask_p > 0 else {})}
    cfg["training"] = tr
    try:
        model.export(a.out)                               # (metadata() never writes 'thresholds')
    except OSError as e:
        print(f"recal_bn: cannot write {a.out}: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {a.out}" + ("; its live thresholds dropped" if cfg.get("thresholds") else ""))


if __name__ == "__main__":
    main()
