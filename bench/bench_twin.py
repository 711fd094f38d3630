"""bench_twin.py - the PyTorch twin's conv-mode throughput on the clips bench_filemode.sh uses.

usage: /usr/bin/python3 bench/bench_twin.py MODEL LIST THREADS [BATCH]

LIST holds one audio path per line (16 kHz mono, as the C side reads them after resampling).
Each clip is presented exactly as `s4kws classify` presents it (daemon/clip.c): padded with
zeros after its end to the decoder window, preroll zeros in front. The clips are decoded and
padded before the clock starts, so only the model's forward pass is timed (favouring PyTorch:
the C figure includes decoding and process start). Prints one JSON line:
{"clips":N,"seconds":S,"clips_per_s":R,"labels":{path:label}}.
"""
import json
import os
import sys
import time

import numpy as np
import soundfile
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weights"))
import s4twin  # noqa: E402


def main():
    model_path, list_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    torch.set_num_threads(threads)
    m = s4twin.load_safetensors_for_bench(model_path)
    cfg = m.cfg
    win, pre = cfg["decoder_window"], cfg["preroll"]
    paths = [p.strip() for p in open(list_path) if p.strip()]
    x = np.zeros((len(paths), pre + win), np.float32)
    for i, p in enumerate(paths):
        a, sr = soundfile.read(p, dtype="float32", always_2d=True)
        if sr != cfg["sample_rate"]:
            raise SystemExit(f"{p}: {sr} Hz, the twin benchmark takes {cfg['sample_rate']} Hz clips")
        a = a.mean(1)[:win]
        x[i, pre:pre + len(a)] = a
    xt = torch.from_numpy(x)
    labels = cfg["labels"]
    out = {}
    with torch.inference_mode():
        m(xt[:2])  # warm-up (allocations, kernel caches)
        t0 = time.perf_counter()
        preds = []
        for b in range(0, len(paths), batch):
            preds.append(m(xt[b:b + batch]).argmax(-1))
        dt = time.perf_counter() - t0
    preds = torch.cat(preds).tolist()
    for p, k in zip(paths, preds):
        out[p] = labels[k]
    print(json.dumps({"clips": len(paths), "seconds": dt, "clips_per_s": len(paths) / dt,
                      "threads": threads, "batch": batch, "labels": out}))


if __name__ == "__main__":
    main()
