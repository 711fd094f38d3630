"""golden.py - write the golden fixtures the C tests compare against (tests/data/).

  /usr/bin/python3 tests/model/golden.py tests/data

For each of two small models (S4D and S4-DPLR, both with >= 3 blocks and pooling, parameters
perturbed away from their init so that a port cannot pass by matching the init) it writes:

  golden_<name>.safetensors      the model, in the s4kws format (F32 weights)
  golden_<name>_io.safetensors   inputs (B, 16000) F32, logits (B, K) F64, kernel.{i} (Hi, Li)
                                 F64 and u.{i} (B, H, L_i) F32 = output of block i after its
                                 pooling and widen

The reference outputs are computed by the PyTorch twin in float64 from the float32-rounded
weights, so the only difference the C engine may show is its own float arithmetic.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "weights"))
import s4twin  # noqa: E402

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
          "_silence_", "_unknown_"]

MODELS = {
    "s4d": dict(s4twin.DEFAULT_CONFIG, name="golden-s4d", kernel="s4d", disc="zoh",
                widths=[8, 16, 16, 24], pools=[4, 2, 1, 1], norm="layer", prenorm=False,
                final_norm=False, n_ssm=0, l_max=16000, decoder_window=16000, preroll=0,
                d_state=64, labels=LABELS),
    "dplr": dict(s4twin.DEFAULT_CONFIG, name="golden-dplr", kernel="dplr", disc="bilinear",
                 widths=[8, 16, 16], pools=[2, 4, 1], norm="batch", prenorm=True,
                 final_norm=True, n_ssm=2, l_max=16000, decoder_window=16000, preroll=0,
                 d_state=64, labels=LABELS, l_kernel=[16000, 8000, 2000]),
}


def perturb(model, g):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("A_real"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif n.endswith("A_imag"):
                p.mul_(1 + 0.05 * torch.randn(p.shape, generator=g)).abs_()
            elif n.endswith("inv_dt"):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            elif n.endswith((".B", ".P")):
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
        model.encoder.weight.mul_(4.0)           # a strong input gain exercises every layer


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, cfg in MODELS.items():
        g = torch.Generator().manual_seed(1234)
        m = s4twin.S4KWS(cfg, seed=7)
        perturb(m, g)
        m.eval()
        path = os.path.join(outdir, f"golden_{name}.safetensors")
        m.export(path)
        # reload the float32 weights so the reference uses exactly what C loads
        m = s4twin.load_safetensors_model(path).double().eval()
        x = torch.randn(2, 16000, generator=g, dtype=torch.float32) * 0.3
        x[1, :4000] = 0.0                           # a silent stretch, then signal
        with torch.no_grad():
            trace = []
            logits = m(x.double(), trace=trace)
            kern = {}
            for i, b in enumerate(m.blocks):
                Li = 16000 // m.cumpool(i)
                kern[f"kernel.{i}"] = b.ssm.kernel(min(Li, cfg["l_max"] // m.cumpool(i)))
        t = {"inputs": x, "logits": logits}
        t.update(kern)
        for i, u in enumerate(trace):
            t[f"u.{i}"] = u.float()
        s4twin.save_safetensors(os.path.join(outdir, f"golden_{name}_io.safetensors"),
                                {k: v.detach() for k, v in t.items()}, {"model": f"golden_{name}"})
        print(f"{name}: logits {logits.numpy().round(4).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
