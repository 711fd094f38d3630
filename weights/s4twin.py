"""s4twin - the PyTorch twin of the s4kws C engine.

The same network as docs/format.md, for training in convolution mode, exporting to the
safetensors format the C loader reads, and writing golden data. Only Debian's python3-torch
and python3-numpy are used; the safetensors container is read and written by hand (it is a
JSON header and raw little-endian bytes).

Module names equal the tensor names of the format, so export is the state_dict itself
(minus BatchNorm's num_batches_tracked) plus the metadata.

Parameterization (official S4 V4 conventions, s4-reference.md section 1):
  dt = exp(inv_dt) or softplus(inv_dt);  A = -exp(A_real) - 1j*A_imag;  channel h uses
  parameter row h % n_ssm;  S4D kernel K[l] = 2 Re sum_n C_n B_n dB_n dA_n^l;  DPLR kernel by
  Algorithm 1 (Cauchy + Woodbury + inverse FFT) from the trained C~ attuned to l_kernel.
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = 1

DEFAULT_CONFIG = {
    "name": "s4kws-sc12",
    "sample_rate": 16000,
    "labels": ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
               "_silence_", "_unknown_"],
    "kernel": "s4d",
    "disc": "zoh",
    "dt_transform": "exp",
    "real_transform": "exp",
    "d_state": 64,
    "n_ssm": 0,           # 0: one parameter row per channel of each block (S = H)
    "widths": [16, 64, 64, 64, 96, 96],
    "pools": [4, 4, 1, 4, 1, 1],
    "norm": "batch",
    "prenorm": True,
    "final_norm": True,
    "activation": "gelu",
    "output": "glu",
    "bidirectional": False,
    "decoder": "pool",
    "decoder_window": 16000,
    "l_max": 24000,
    "preroll": 8000,
}


# --------------------------------------------------------------------------------------------
# SSM kernels

def _param_transform(x, kind):
    if kind == "exp":
        return torch.exp(x)
    if kind == "softplus":
        return F.softplus(x)
    if kind == "relu":
        return F.relu(x) + 1e-4
    if kind == "none":
        return x
    raise ValueError(f"unsupported transform '{kind}'")


def _inv_transform(x, kind):
    if kind == "exp":
        return torch.log(x)
    if kind == "softplus":
        return x + torch.log(-torch.expm1(-x))
    if kind in ("relu", "none"):
        return x
    raise ValueError(kind)


class SSM(nn.Module):
    """One bank of H SSM channels with N/2 complex modes each, plus the D skip."""

    def __init__(self, H, N=64, S=0, kernel="s4d", disc="zoh", dt_transform="exp",
                 real_transform="exp", dt_min=1e-3, dt_max=1e-1, l_kernel=0, init="lin",
                 generator=None):
        super().__init__()
        S = S or H
        N2 = N // 2
        self.H, self.N2, self.S = H, N2, S
        self.family, self.disc = kernel, disc
        self.dt_transform, self.real_transform = dt_transform, real_transform
        g = generator
        log_dt = torch.rand(H, 1, generator=g) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.inv_dt = nn.Parameter(_inv_transform(torch.exp(log_dt), dt_transform))
        n = torch.arange(N2, dtype=torch.float32)
        if kernel == "dplr" or init == "legs":
            Lam, P, Bt = nplr_legs(N)
            A_re, A_im = -Lam.real.float(), -Lam.imag.float()
            self.P = nn.Parameter(torch.view_as_real(P.to(torch.cfloat)).repeat(S, 1, 1).contiguous())
            Bc = Bt.to(torch.cfloat)
        else:
            A_re = 0.5 * torch.ones(N2)
            A_im = math.pi * n
            Bc = torch.ones(N2, dtype=torch.cfloat)
        if kernel != "dplr":
            self.P = None
        self.A_real = nn.Parameter(_inv_transform(A_re.clamp(min=1e-4), real_transform).repeat(S, 1).contiguous())
        self.A_imag = nn.Parameter(A_im.clamp(min=1e-4).repeat(S, 1).contiguous())
        self.B = nn.Parameter(torch.view_as_real(Bc).repeat(S, 1, 1).contiguous())
        C = torch.randn(H, N2, dtype=torch.cfloat, generator=g) * (0.5 ** 0.5)
        self.C = nn.Parameter(torch.view_as_real(C).contiguous())
        self.D = nn.Parameter(torch.randn(H, generator=g))
        self.l_kernel = l_kernel   # DPLR: C holds C~ for this length (0 = raw C)
        self.chunk = 128

    def _bcast(self, t):                                  # (S, ...) -> (H, ...), row h % S
        reps = -(-self.H // self.S)
        return t.repeat(reps, *([1] * (t.dim() - 1)))[: self.H]

    def params(self):
        dt = _param_transform(self.inv_dt, self.dt_transform)                  # (H, 1)
        A = -_param_transform(self.A_real, self.real_transform) - 1j * self.A_imag
        A = self._bcast(A)                                                     # (H, N2)
        B = self._bcast(torch.view_as_complex(self.B))
        C = torch.view_as_complex(self.C)
        P = self._bcast(torch.view_as_complex(self.P)) if self.P is not None else None
        return dt, A, B, C, P

    def kernel(self, L):
        if self.family == "dplr":
            return self._kernel_dplr(L)
        dt, A, B, C, _ = self.params()
        dtA = dt * A                                                           # (H, N2)
        if self.disc == "zoh":
            Cp = C * B * (torch.exp(dtA) - 1.0) / A
            logdA = dtA
        elif self.disc == "bilinear":
            Cp = C * B * dt / (1.0 - dtA / 2)
            logdA = torch.log((1.0 + dtA / 2) / (1.0 - dtA / 2))
        else:
            raise ValueError(self.disc)
        return _vandermonde(Cp, logdA, L, self.chunk)

    def _kernel_dplr(self, L):
        """Algorithm 1: kernel of length l_kernel from C~ at the l_kernel roots of unity,
        truncated to L. The Nyquist node is evaluated in the singularity-free form."""
        Lk = self.l_kernel or L
        if L > Lk:
            raise ValueError(f"DPLR kernel length {L} > l_kernel {Lk}")
        dt, A, B, C, P = self.params()
        Q = P.conj()
        rdt = dt.real if dt.is_complex() else dt
        cdt = A.dtype
        k = torch.arange(Lk // 2 + 1, dtype=rdt.dtype, device=rdt.device)
        omega = torch.exp(-2j * math.pi * k / Lk).to(cdt)                      # (L/2+1)
        # 1/(z - Lam~) with z = 2(1-w)/(1+w)  ==  (1+w) / (2(1-w) - Lam~(1+w)) = (1+w) / den
        Lt = (dt * A).unsqueeze(-1)                                            # (H, N2, 1)
        num = (1 + omega)
        den = 2 * (1 - omega) - Lt * num                                       # (H, N2, L/2+1)
        denc = 2 * (1 - omega) - Lt.conj() * num

        def cauchy(u, v):                  # s = sum over both conjugate halves of w / den
            w = (u * v * dt).unsqueeze(-1)                                     # (H, N2, 1)
            return (w / den + w.conj() / denc).sum(1)                          # (H, L/2+1)

        s00, s01 = cauchy(C, B), cauchy(C, P)
        s10, s11 = cauchy(Q, B), cauchy(Q, P)
        # r_ij = (1+w) s_ij; rank-1 Woodbury, then the bilinear factor 2/(1+w), folded so that
        # nothing divides by 1+w (which is 0 at the Nyquist node w = -1 for even L).
        Kh = 2 * s00 - 2 * num * s01 * s10 / (1 + num * s11)
        k = torch.fft.irfft(Kh, n=Lk)                                          # (H, Lk)
        return k[:, :L]


def _vandermonde(Cp, logdA, L, chunk):
    """K[h, l] = 2 Re sum_n Cp[h,n] exp(logdA[h,n] * l), computed as one complex GEMM over
    chunks: exp(x (qR + r)) = exp(x qR) exp(x r)."""
    R = chunk
    Q = -(-L // R)
    rdt = torch.float64 if Cp.dtype == torch.complex128 else torch.float32
    Pr = torch.exp(logdA.unsqueeze(-1) * torch.arange(R, dtype=rdt, device=Cp.device))  # (H, N2, R)
    Pq = torch.exp(logdA.unsqueeze(-1) * (R * torch.arange(Q, dtype=rdt, device=Cp.device)))  # (H, N2, Q)
    K = torch.bmm((Cp.unsqueeze(-1) * Pq).transpose(1, 2), Pr)                       # (H, Q, R)
    return 2 * K.real.reshape(K.size(0), Q * R)[:, :L]


def nplr_legs(N):
    """HiPPO-LegS in NPLR form (s4-reference section 4): returns Lam (N/2), P (N/2), B (N/2),
    keeping the eigenvalues with negative imaginary part."""
    q = np.arange(N, dtype=np.float64)
    col, row = np.meshgrid(q, q)
    r = 2 * q + 1
    M = -(np.where(row >= col, r, 0) - np.diag(q))
    T = np.sqrt(np.diag(2 * q + 1))
    A = T @ M @ np.linalg.inv(T)
    Bv = np.sqrt(2 * q + 1)
    P = np.sqrt(q + 0.5)
    AP = A + np.outer(P, P)
    W_re = np.mean(np.diagonal(AP))
    W_im, V = np.linalg.eigh(AP * -1j)
    Lam = W_re + 1j * W_im
    idx = np.argsort(Lam.imag)
    Lam, V = Lam[idx], V[:, idx]
    Lam, V = Lam[: N // 2], V[:, : N // 2]
    Vc = V.conj().T
    Bt = Vc @ Bv
    Pt = Vc @ P
    Bt = Bt.real + 1j * np.clip(Bt.imag, -2, 2)
    return (torch.tensor(Lam), torch.tensor(Pt), torch.tensor(Bt))


# --------------------------------------------------------------------------------------------
# Network

class ChanNorm(nn.Module):
    """LayerNorm over channels of a (B, H, L) tensor, or eval-style BatchNorm1d."""

    def __init__(self, H, kind):
        super().__init__()
        self.kind = kind
        if kind == "layer":
            self.weight = nn.Parameter(torch.ones(H))
            self.bias = nn.Parameter(torch.zeros(H))
        elif kind == "batch":
            self.bn = nn.BatchNorm1d(H)
        else:
            raise ValueError(f"unsupported norm '{kind}'")

    def forward(self, x):
        if self.kind == "batch":
            return self.bn(x)
        mu = x.mean(1, keepdim=True)
        var = x.var(1, unbiased=False, keepdim=True)
        return (x - mu) * torch.rsqrt(var + 1e-5) * self.weight[:, None] + self.bias[:, None]

    def export(self, prefix):
        if self.kind == "layer":
            return {prefix + ".weight": self.weight, prefix + ".bias": self.bias}
        return {prefix + ".weight": self.bn.weight, prefix + ".bias": self.bn.bias,
                prefix + ".running_mean": self.bn.running_mean,
                prefix + ".running_var": self.bn.running_var}


class Block(nn.Module):
    def __init__(self, H, cfg, l_kernel=0, generator=None):
        super().__init__()
        self.prenorm = cfg["prenorm"]
        self.norm = ChanNorm(H, cfg["norm"])
        self.ssm = SSM(H, cfg["d_state"], cfg.get("n_ssm", 0), cfg["kernel"], cfg["disc"],
                       cfg["dt_transform"], cfg["real_transform"], l_kernel=l_kernel,
                       generator=generator)
        self.out = nn.Linear(H, 2 * H)

    def forward(self, u, lk):                                # u (B, H, L)
        z = self.norm(u) if self.prenorm else u
        L = z.size(-1)
        k = self.ssm.kernel(min(L, lk))                      # (H, Lk)
        n = L + k.size(-1)
        y = torch.fft.irfft(torch.fft.rfft(z, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :L]
        y = F.gelu(y + z * self.ssm.D[:, None])
        y = F.glu(F.conv1d(y, self.out.weight[:, :, None], self.out.bias), dim=1)
        u = u + y
        return u if self.prenorm else self.norm(u)


class S4KWS(nn.Module):
    def __init__(self, cfg=None, seed=0):
        super().__init__()
        cfg = dict(DEFAULT_CONFIG if cfg is None else cfg)
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        W, P = cfg["widths"], cfg["pools"]
        assert len(W) == len(P)
        self.encoder = nn.Linear(1, W[0])
        lks = cfg.get("l_kernel") or [0] * len(W)
        self.blocks = nn.ModuleList(Block(W[i], cfg, lks[i], g) for i in range(len(W)))
        self.widen = nn.ModuleDict({str(i): nn.Linear(W[i], W[i + 1])
                                    for i in range(len(W) - 1) if W[i + 1] != W[i]})
        self.final_norm = ChanNorm(W[-1], cfg["norm"]) if cfg["final_norm"] else None
        self.decoder = nn.Linear(W[-1], len(cfg["labels"]))

    def cumpool(self, i):
        return int(np.prod(self.cfg["pools"][:i])) if i else 1

    def total_pool(self):
        return int(np.prod(self.cfg["pools"]))

    def features(self, x, trace=None):
        """x (B, L) -> final features (B, Hlast, L / total_pool)."""
        u = x.unsqueeze(1) * self.encoder.weight[:, 0][None, :, None] + self.encoder.bias[None, :, None]
        for i, blk in enumerate(self.blocks):
            u = blk(u, self.cfg["l_max"] // self.cumpool(i))
            p = self.cfg["pools"][i]
            if p > 1:
                u = F.avg_pool1d(u, p)
            if str(i) in self.widen:
                w = self.widen[str(i)]
                u = F.conv1d(u, w.weight[:, :, None], w.bias)
            if trace is not None:
                trace.append(u)
        if self.final_norm is not None:
            u = self.final_norm(u)
        return u

    def forward(self, x, window=None, trace=None):
        f = self.features(x, trace)
        if self.cfg["decoder"] == "last":
            f = f[..., -1]
        else:
            wf = (window or self.cfg["decoder_window"]) // self.total_pool()
            f = f[..., -wf:].mean(-1)
        return self.decoder(f)

    def hop_logits(self, x, stride=1):
        """x (B, L) -> logits (B, T, labels) of every decoder window that ends inside x and
        fits in it, one per `stride` final frames, the last one ending at x's end: what a live
        stepper scores hop by hop (the per-hop objective of train.py's negative streams)."""
        f = self.features(x)                                        # (B, H, L / total_pool)
        if self.cfg["decoder"] == "last":
            g = f
        else:
            wf = self.cfg["decoder_window"] // self.total_pool()
            g = F.avg_pool1d(f, wf, stride=1)                       # (B, H, frames - wf + 1)
        g = g.flip(-1)[..., ::stride].flip(-1)                      # keep the last window
        return self.decoder(g.transpose(1, 2))

    def hop_ends(self, length, hops, stride=1):
        """The sample (from x's start) at which each of hop_logits' `hops` windows ends, for an
        input of `length` samples: the last at its end, each one `stride` final frames earlier."""
        back = torch.arange(hops - 1, -1, -1, device=self.encoder.weight.device)
        return length - back * stride * self.total_pool()

    # ---------------------------------------------------------------------------- export
    def tensors(self):
        t = {"encoder.weight": self.encoder.weight, "encoder.bias": self.encoder.bias}
        for i, b in enumerate(self.blocks):
            p = f"blocks.{i}."
            t.update(b.norm.export(p + "norm"))
            s = b.ssm
            t[p + "ssm.inv_dt"] = s.inv_dt
            t[p + "ssm.A_real"] = s.A_real
            t[p + "ssm.A_imag"] = s.A_imag
            t[p + "ssm.B"] = s.B
            if s.P is not None:
                t[p + "ssm.P"] = s.P
            t[p + "ssm.C"] = s.C
            t[p + "ssm.D"] = s.D
            t[p + "out.weight"] = b.out.weight
            t[p + "out.bias"] = b.out.bias
        for k, w in self.widen.items():
            t[f"widen.{k}.weight"] = w.weight
            t[f"widen.{k}.bias"] = w.bias
        if self.final_norm is not None:
            t.update(self.final_norm.export("final_norm"))
        t["decoder.weight"] = self.decoder.weight
        t["decoder.bias"] = self.decoder.bias
        return t

    def metadata(self):
        c = self.cfg
        n_ssm = c.get("n_ssm", 0)
        meta = {
            "format": "s4kws", "format_version": str(FORMAT_VERSION), "name": c["name"],
            "sample_rate": str(c["sample_rate"]), "labels": json.dumps(c["labels"]),
            "kernel": c["kernel"], "disc": c["disc"], "dt_transform": c["dt_transform"],
            "real_transform": c["real_transform"], "d_state": str(c["d_state"]),
            "n_ssm": str(n_ssm if n_ssm else 0), "widths": json.dumps(c["widths"]),
            "pools": json.dumps(c["pools"]), "norm": c["norm"],
            "prenorm": json.dumps(bool(c["prenorm"])), "final_norm": json.dumps(bool(c["final_norm"])),
            "activation": c["activation"], "output": c["output"],
            "bidirectional": json.dumps(bool(c.get("bidirectional", False))),
            "decoder": c["decoder"], "decoder_window": str(c["decoder_window"]),
            "l_max": str(c["l_max"]),
            "l_kernel": json.dumps([b.ssm.l_kernel for b in self.blocks]),
            "preroll": str(c["preroll"]),
        }
        if not n_ssm:
            # n_ssm = 0 in the config means S = H per block; the file needs one number, so
            # blocks of different widths must each have S = H: store per-block in that case.
            meta["n_ssm"] = "0"
        for k in ("description", "training"):
            if k in c:
                meta[k] = c[k] if isinstance(c[k], str) else json.dumps(c[k])
        return meta

    def export(self, path, dtype=torch.float32):
        save_safetensors(path, {k: v.detach().to(dtype) for k, v in self.tensors().items()},
                         self.metadata())


def load_safetensors_model(path):
    """Build an S4KWS from a format-1 safetensors file (the inverse of S4KWS.export)."""
    tensors, meta = load_safetensors(path)
    cfg = config_from_metadata(meta)
    m = S4KWS(cfg)
    own = m.tensors()
    with torch.no_grad():
        for k, v in own.items():
            if k not in tensors:
                raise KeyError(f"missing tensor {k}")
            v.copy_(torch.from_numpy(np.array(tensors[k])).to(v.dtype).reshape(v.shape))
    return m


def config_from_metadata(meta):
    cfg = dict(DEFAULT_CONFIG)
    js = {"labels", "widths", "pools", "prenorm", "final_norm", "bidirectional", "l_kernel"}
    ints = {"sample_rate", "d_state", "n_ssm", "decoder_window", "l_max", "preroll"}
    for k, v in meta.items():
        if k in js:
            cfg[k] = json.loads(v)
        elif k in ints:
            cfg[k] = int(v)
        elif k not in ("format", "format_version"):
            cfg[k] = v
    return cfg


# --------------------------------------------------------------------------------------------
# safetensors container

_DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
_DT_NAME = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}


def save_safetensors(path, tensors, metadata):
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, off = [], 0
    for name, t in tensors.items():
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        a = np.ascontiguousarray(a)
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DT_NAME[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """(tensors, metadata) of a safetensors file. Raises OSError, or ValueError when the file is
    not one (truncated, a header that is not a JSON object of tensor entries, an unknown dtype,
    data outside the file): callers catch those two and print one line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        meta = header.pop("__metadata__", {})
        base = 8 + n
        out = {}
        for name, e in header.items():
            a, b = e["data_offsets"]
            out[name] = np.frombuffer(data[base + a: base + b], dtype=_DT[e["dtype"]]).reshape(e["shape"])
    except (struct.error, TypeError, AttributeError, KeyError) as e:
        raise ValueError(f"not a safetensors file ({type(e).__name__}: {e})") from e
    return out, meta


def load_safetensors_for_bench(path):
    """Convenience for benchmarks: a float32 eval-mode twin from a weights file."""
    m = load_safetensors_model(path)
    return m.eval()
