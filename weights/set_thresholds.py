#!/usr/bin/python3
"""set_thresholds.py - store a model's tuned detection thresholds in its metadata.

  /usr/bin/python3 weights/set_thresholds.py MODEL.safetensors [--out FILE] KW=P [KW=P ...]
  /usr/bin/python3 weights/set_thresholds.py MODEL.safetensors --clear

Writes the metadata key 'thresholds' (a JSON object {keyword: P}, docs/format.md) and leaves
every tensor and every other key as it was. `s4kws listen` and `s4kws classify` use these
thresholds for the keywords that neither the config file nor a flag gives one (--threshold P
or --threshold KW=P win). The values come from the per-keyword tuning of the post-processing
on the validation streams (bench/tune_pp --per-keyword; weights/MODEL_CARD.md).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s4twin  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("model")
    ap.add_argument("pairs", nargs="*", help="KW=P, P in (0, 1]")
    ap.add_argument("--out", help="write here instead of replacing MODEL")
    ap.add_argument("--clear", action="store_true", help="remove the thresholds")
    a = ap.parse_intermixed_args()
    tensors, meta = s4twin.load_safetensors(a.model)
    labels = json.loads(meta["labels"])
    thr = {}
    for p in a.pairs:
        kw, _, v = p.partition("=")
        if kw not in labels or kw.startswith("_"):
            sys.exit(f"set_thresholds: '{kw}' is not a keyword of {a.model}")
        try:
            t = float(v)
        except ValueError:
            t = -1.0
        if not 0 < t <= 1:
            sys.exit(f"set_thresholds: {p}: the threshold must be a number in (0, 1]")
        thr[kw] = t
    if a.clear:
        meta.pop("thresholds", None)
    elif not thr:
        sys.exit("set_thresholds: give KW=P pairs or --clear")
    else:
        meta["thresholds"] = json.dumps({k: thr[k] for k in labels if k in thr})
    out = a.out or a.model
    tmp = out + ".tmp"
    s4twin.save_safetensors(tmp, tensors, meta)
    os.replace(tmp, out)
    print(f"{out}: thresholds {meta.get('thresholds', 'none')}")


if __name__ == "__main__":
    main()
