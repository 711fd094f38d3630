"""convert_official.py - convert an official S4 (state-spaces/s4, V4 layout) checkpoint.

  /usr/bin/python3 tests/model/convert_official.py IN.pt OUT.safetensors [--labels a,b,...]

IN.pt is a torch.save'd dict with `state_dict` in the official V4 training-script key layout
(encoder.0, model.layers.{i}.layer.layer.kernel.*, model.layers.{i}.layer.layer.D,
model.layers.{i}.layer.output_linear.0, model.layers.{i}.norm.norm, model.norm.norm,
decoder.0.output_transform) and `hparams` (d_model, n_layers, mode, disc, dt_transform,
real_transform, n_ssm, prenorm, norm, bidirectional, ...), as in
../shared/reference/official-s4d/. Both S4D (`mode: diag`) and S4-DPLR (`mode: nplr`/`dplr`,
rank 1) kernels convert; DPLR keeps the trained C~ together with its `l_kernel` buffer.

Bidirectional models convert (file mode only; `s4kws listen` refuses them). Options the
engine does not implement are refused by name, never silently dropped.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "weights"))
import s4twin  # noqa: E402


class Refused(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Refused(msg)


def convert(ckpt, labels=None):
    sd = {k: v.detach().cpu() for k, v in ckpt["state_dict"].items()}
    hp = dict(ckpt.get("hparams", {}))
    get = hp.get

    # Refuse what the engine does not do, by name.
    need(get("channels", 1) == 1, f"unsupported option channels={get('channels')} (only 1)")
    need(get("rank", 1) == 1, f"unsupported option rank={get('rank')} (only rank 1)")
    need(get("dt_tie", True), "unsupported option dt_tie=False (one dt per channel only)")
    need(not get("dt_fast", False), "unsupported option dt_fast=True")
    need(get("bandlimit") is None, f"unsupported option bandlimit={get('bandlimit')}")
    need(not get("is_real", False), "unsupported option is_real=True")
    need(not get("transposed", False), "unsupported option transposed=True (TransposedLN)")
    need(get("imag_transform", "none") == "none",
         f"unsupported option imag_transform={get('imag_transform')}")
    need(get("real_transform", "exp") in ("exp", "relu", "none"),
         f"unsupported option real_transform={get('real_transform')}")
    need(get("dt_transform", "exp") in ("exp", "softplus"),
         f"unsupported option dt_transform={get('dt_transform')}")
    need(get("final_act", "glu") == "glu", f"unsupported option final_act={get('final_act')}")
    need(get("activation", "gelu") == "gelu", f"unsupported option activation={get('activation')}")
    need(get("gelu", "erf") == "erf", f"unsupported option gelu={get('gelu')} (exact erf only)")
    need(get("residual", "R") == "R", f"unsupported option residual={get('residual')}")
    need(get("norm", "layer") in ("layer", "batch"), f"unsupported option norm={get('norm')}")
    need(get("encoder", "linear") == "linear", f"unsupported option encoder={get('encoder')}")
    need(get("d_input", 1) == 1, f"unsupported option d_input={get('d_input')} (mono audio only)")
    need(get("decoder_mode", "pool") in ("pool", "last"),
         f"unsupported option decoder_mode={get('decoder_mode')}")
    need(get("pool", "mean") == "mean", f"unsupported option pool={get('pool')}")
    mode = get("mode", "diag")
    need(mode in ("diag", "s4d", "nplr", "dplr", "s4"), f"unsupported option mode={mode}")
    family = "s4d" if mode in ("diag", "s4d") else "dplr"
    disc = get("disc", "zoh") if family == "s4d" else "bilinear"
    need(disc in ("zoh", "bilinear"), f"unsupported option disc={disc}")
    for k in sd:
        need("weight_g" not in k and "weight_v" not in k, f"unsupported weight_norm tensor {k}")

    H = int(get("d_model"))
    nl = int(get("n_layers"))
    N = int(get("d_state", 64))
    bidir = bool(get("bidirectional", False))
    prenorm = bool(get("prenorm", True))
    norm = get("norm", "layer")
    L_in = int(get("input_length", get("l_max") or 16000))
    l_max = int(get("l_max") or L_in)

    t, l_kernel = {}, []
    t["encoder.weight"] = sd.pop("encoder.0.weight")
    t["encoder.bias"] = sd.pop("encoder.0.bias")
    S = None
    for i in range(nl):
        p = f"model.layers.{i}."
        k = p + "layer.layer.kernel."
        o = f"blocks.{i}."
        need(k + "inv_dt" in sd, f"missing tensor {k}inv_dt")
        t[o + "ssm.inv_dt"] = sd.pop(k + "inv_dt")
        need(t[o + "ssm.inv_dt"].shape == (H, 1), f"{k}inv_dt has shape "
             f"{list(t[o + 'ssm.inv_dt'].shape)}, want [{H}, 1]")
        t[o + "ssm.A_real"] = sd.pop(k + "A_real")
        t[o + "ssm.A_imag"] = sd.pop(k + "A_imag")
        B = sd.pop(k + "B")
        need(B.dim() == 4 and B.shape[0] == 1, f"{k}B has shape {list(B.shape)}, want [1, S, N/2, 2]")
        t[o + "ssm.B"] = B[0]
        S = B.shape[1]
        if family == "dplr":
            P = sd.pop(k + "P")
            need(P.shape[0] == 1, f"{k}P has rank {P.shape[0]} (only rank 1)")
            t[o + "ssm.P"] = P[0]
            lk = sd.pop(k + "l_kernel", torch.tensor(0))
            l_kernel.append(int(lk))
        else:
            sd.pop(k + "l_kernel", None)
            l_kernel.append(0)
        C = sd.pop(k + "C")
        need(C.shape[0] == (2 if bidir else 1), f"{k}C has {C.shape[0]} channels, want {2 if bidir else 1}")
        t[o + "ssm.C"] = C if bidir else C[0]
        D = sd.pop(p + "layer.layer.D")
        t[o + "ssm.D"] = D.reshape(-1)
        t[o + "out.weight"] = sd.pop(p + "layer.output_linear.0.weight")
        t[o + "out.bias"] = sd.pop(p + "layer.output_linear.0.bias")
        for s in ("weight", "bias") + (("running_mean", "running_var") if norm == "batch" else ()):
            t[o + "norm." + s] = sd.pop(p + "norm.norm." + s)
        sd.pop(p + "norm.norm.num_batches_tracked", None)
    final_norm = "model.norm.norm.weight" in sd
    if final_norm:
        for s in ("weight", "bias") + (("running_mean", "running_var") if norm == "batch" else ()):
            t["final_norm." + s] = sd.pop("model.norm.norm." + s)
        sd.pop("model.norm.norm.num_batches_tracked", None)
    t["decoder.weight"] = sd.pop("decoder.0.output_transform.weight")
    t["decoder.bias"] = sd.pop("decoder.0.output_transform.bias")
    left = [k for k in sd if not k.endswith(("num_batches_tracked",))]
    need(not left, f"unknown tensors in checkpoint: {', '.join(left[:5])}")

    K = t["decoder.weight"].shape[0]
    labels = labels or get("labels") or [f"class{i}" for i in range(K)]
    need(len(labels) == K, f"{len(labels)} labels for a {K}-class decoder")
    meta = {
        "format": "s4kws", "format_version": str(s4twin.FORMAT_VERSION),
        "name": get("name", "official-s4-" + family), "sample_rate": str(get("sample_rate", 16000)),
        "labels": json.dumps(labels), "kernel": family, "disc": disc,
        "dt_transform": get("dt_transform", "exp"), "real_transform": get("real_transform", "exp"),
        "d_state": str(N), "n_ssm": str(S), "widths": json.dumps([H] * nl),
        "pools": json.dumps([1] * nl), "norm": norm, "prenorm": json.dumps(prenorm),
        "final_norm": json.dumps(final_norm), "activation": "gelu", "output": "glu",
        "bidirectional": json.dumps(bidir), "decoder": get("decoder_mode", "pool"),
        "decoder_window": str(L_in), "l_max": str(l_max), "l_kernel": json.dumps(l_kernel),
        "preroll": "0",
        "description": "converted from an official state-spaces/s4 V4 checkpoint",
    }
    tensors = {k: v.to(torch.float32).contiguous() for k, v in t.items()}
    return tensors, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--labels", default=None, help="comma-separated labels (default: hparams)")
    a = ap.parse_args()
    try:
        ckpt = torch.load(a.inp, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one sentence
        print(f"convert_official: cannot read {a.inp}: {e}", file=sys.stderr)
        return 1
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        print(f"convert_official: {a.inp} has no 'state_dict' (want torch.save({{'state_dict':..., 'hparams':...}}))",
              file=sys.stderr)
        return 1
    try:
        tensors, meta = convert(ckpt, a.labels.split(",") if a.labels else None)
    except (Refused, KeyError) as e:
        print(f"convert_official: {a.inp}: {e}", file=sys.stderr)
        return 1
    s4twin.save_safetensors(a.out, tensors, meta)
    print(f"wrote {a.out}: {meta['kernel']} {len(json.loads(meta['widths']))} blocks of "
          f"{json.loads(meta['widths'])[0]}, {sum(v.numel() for v in tensors.values())} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
