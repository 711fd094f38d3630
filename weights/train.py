"""train.py - train the default s4kws keyword model with the PyTorch twin (convolution mode).

Usage (the command that made the shipped model is in weights/MODEL_CARD.md):

  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 weights/train.py \
      --data ../shared/data/speech_commands/train \
      --noise ../shared/data/speech_commands/_background_noise_ \
      --synth /work/cache/synth --val ../shared/data/speech_commands/val \
      --run /work/ckpt/sc12 --minutes 100 --out weights/s4kws-sc12.safetensors

Any Speech Commands-layout folder works for --data / --synth (a folder per label; `_unknown_`
and `_silence_` optional; the label list is the model's, see --labels). Training examples are
built on the fly, reproducibly from --seed:

  [ preroll: 0.5 s of zeros | noise | the tail of another clip ] [ 1 s window holding the word ]

and the loss is on the decoder's mean over the last 1 s only, so the model learns to recognise a
word whatever came before it (live mode: the stepper has heard everything before the window),
and zero preroll matches what `s4kws classify` feeds a lone clip. Augmentation: time shift,
gain, speed perturbation, background noise at 0-25 dB SNR, cheap synthetic reverberation, and a
3.4-4 kHz band limit on --band-p (12 %) of examples (8 kHz and telephone recordings, resampled
to 16 kHz), with --eq-p a random low and high shelf (microphone and room colouring), and with
--mask-p SpecAugment-style time masks (stretches of the word silenced) and a band-stop.
With --pair-p P a share P of the batch is also fed band-limited, and the
band-limited twin is pulled towards the full-band prediction (KL divergence, weight --pair-w,
the full-band side detached): what `classify` must do is give an 8 kHz copy of a recording the
16 kHz original's label, not merely a plausible one. Keywords come from real clips with
probability --real-p (0.65; --thin-real-p, 0.4, for labels with fewer than 500 real clips),
else from the synthetic folders. With --ema D the exported weights
(and BatchNorm statistics) are the exponential moving average of the last ~1/(1-D) steps.
Streams (2.5 s with --context 24000) are scored hop by hop as the live detector sees them: with
--neg-per-batch N, keyword-free ones (real negatives' training speakers, `_unknown_` words,
noise) at their worst hop; with --pos-per-batch N, the same bed with one keyword said inside it
(a pause either side), at its best hop within --pos-after s of the word's end, and the hops
before the word as keyword-free (max-pooling both ways, Sun et al. 2016).

Checkpoints (model + optimizer + RNG + step) go to --run every --ckpt-every steps; re-running the
same command resumes (the EMA too). The log (one line per 50 steps, validation every --val-every steps) is
--run/train.log. With --steps the cosine schedule runs over that many steps (exactly reproducible); with
--minutes it runs over wall-clock time (the run ends on time on a busy machine; the model card
records the steps it reached).
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
import time

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s4twin  # noqa: E402

SR = 16000
W = 16000


def log(run, msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if run:
        with open(os.path.join(run, "train.log"), "a") as f:
            f.write(line + "\n")


# ----------------------------------------------------------------------------------- data

def read_audio(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(1)
    if sr != SR:
        n = int(round(len(x) * SR / sr))
        x = np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x).astype(np.float32)
    return x


def load_folder(root, labels, cache_dir=None, max_len=W, words_out=None):
    """{label: [int16 arrays]} for a Speech Commands-layout folder; cached as one .npz. With
    words_out (a dict), words_out[label] gets each clip's word (the file name's first field)."""
    key = os.path.abspath(root).strip("/").replace("/", "_")
    if labels != s4twin.DEFAULT_CONFIG["labels"]:   # the cache stores label indices
        key += "_" + hashlib.sha1(",".join(labels).encode()).hexdigest()[:10]
    cache = os.path.join(cache_dir, f"clips_{key}.npz") if cache_dir else None
    if cache and os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        data, lab, off = z["data"], z["label"], z["offsets"]
        words = list(z["words"])
    else:
        chunks, lab, off, words, pos = [], [], [0], [], 0
        for li, name in enumerate(labels):
            d = os.path.join(root, name)
            if not os.path.isdir(d):
                continue
            for fn in sorted(os.listdir(d)):
                if not fn.lower().endswith((".wav", ".flac", ".ogg")):
                    continue
                x = read_audio(os.path.join(d, fn))[:max_len]
                if len(x) < 800 or not np.isfinite(x).all():
                    continue
                q = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
                chunks.append(q)
                pos += len(q)
                off.append(pos)
                lab.append(li)
                words.append(fn.split("_")[0])
        data = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        lab, off = np.array(lab, np.int64), np.array(off, np.int64)
        if cache:
            os.makedirs(cache_dir, exist_ok=True)
            np.savez(cache + ".tmp.npz", data=data, label=lab, offsets=off, words=np.array(words))
            os.replace(cache + ".tmp.npz", cache)
    out = {name: [] for name in labels}
    if words_out is not None:
        words_out.update({name: [] for name in labels})
    for i, li in enumerate(lab):
        out[labels[li]].append(data[off[i]:off[i + 1]])
        if words_out is not None:
            words_out[labels[li]].append(str(words[i]))
    return out


def speaker_number(fn):
    """The first run of digits in a file name (speechocean762: speakerNNNN_...), or -1."""
    d = ""
    for ch in os.path.basename(fn):
        if ch.isdigit():
            d += ch
        elif d:
            break
    return int(d) if d else -1


def transcripts(root):
    """{file name: upper-case transcript} from the .tsv files under `root` (speechocean762.tsv:
    file, speaker, duration, transcript)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            if fn.endswith(".tsv"):
                with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                    for line in f:
                        cols = line.rstrip("\n").split("\t")
                        if len(cols) >= 4:
                            out[os.path.basename(cols[0])] = cols[-1].upper()
    return out


def says(transcript, keywords):
    """Whether a transcript has one of the keywords (labels; '-' as a space) as whole words."""
    words = " " + " ".join(re.findall(r"[A-Z']+", transcript)) + " "
    return any(" " + k.replace("-", " ").upper() + " " in words for k in keywords)


def load_negatives(root, holdout_mod, keywords=()):
    """Keyword-free recordings (int16 arrays, whole files) from `root` (recursively), leaving
    out the held-out speakers: files whose speaker number is divisible by holdout_mod
    (bench/det.sh measures false alarms on exactly those), and every file whose transcript (a
    .tsv beside it) says one of `keywords`: the folder is keyword-free for the ten Speech
    Commands words only, and "I want to buy a new computer" must not teach a wake-word model
    that "computer" is not one. Returns the recordings and how many files were left out so."""
    out, said = [], 0
    text = transcripts(root) if keywords else {}
    for dirpath, _, files in sorted(os.walk(root)):
        for fn in sorted(files):
            if not fn.lower().endswith((".wav", ".flac")):
                continue
            if holdout_mod > 0 and speaker_number(fn) % holdout_mod == 0:
                continue
            if keywords and says(text.get(fn, ""), keywords):
                said += 1
                continue
            x = read_audio(os.path.join(dirpath, fn))
            if len(x) < 1600 or not np.isfinite(x).all():
                continue
            out.append(np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16))
    return out, said


def load_noise(root):
    noises = []
    for fn in sorted(os.listdir(root)):
        if fn.lower().endswith((".wav", ".flac")):
            x = read_audio(os.path.join(root, fn))
            x = x / (np.sqrt(np.mean(x ** 2)) + 1e-9)          # unit RMS; level set per use
            noises.append(x.astype(np.float32))
    return noises


def load_pools(data, synth_dirs, noise, labels, cache_dir=None):
    """The clip pools a Maker draws from: real {label: clips} from the training folder, the
    synthetic folders' clips merged per label, the noise files, and the words of the clips
    ({"real"|"synth": {label: [word per clip]}}, so `_unknown_` is drawn by word)."""
    words = {"real": {l: [] for l in labels}, "synth": {l: [] for l in labels}}
    real = load_folder(data, labels, cache_dir, words_out=words["real"]) if data \
        else {l: [] for l in labels}
    synth = {l: [] for l in labels}
    for d in synth_dirs:
        wd = {}
        for l, cl in load_folder(d, labels, cache_dir, words_out=wd).items():
            synth[l] += cl
            words["synth"][l] += wd[l]
    return real, synth, load_noise(noise), words


def rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)


def shape_keep_level(x, gain):
    """x through a zero-phase filter given as a gain per rfft bin, at x's RMS level."""
    y = np.fft.irfft(np.fft.rfft(x) * gain, len(x))
    return (y * (rms(x) / rms(y))).astype(np.float32)


class Maker:
    """Builds augmented training examples (preroll + 1 s window) from clip pools."""

    def __init__(self, labels, real, synth, noises, preroll, rng, real_p=0.65, band_p=0.12,
                 pair_p=0.0, eq_p=0.0, mask_p=0.0, thin_real_p=0.4, words=None, negatives=(),
                 vtlp_p=0.0):
        self.labels, self.real, self.synth, self.noises = labels, real, synth, noises
        self.pre, self.rng = preroll, rng
        self.real_p, self.band_p, self.pair_p, self.eq_p = real_p, band_p, pair_p, eq_p
        self.mask_p, self.thin_real_p, self.vtlp_p = mask_p, thin_real_p, vtlp_p
        self.keywords = [l for l in labels if not l.startswith("_")]
        self.all_clips = [c for pool in (real, synth) for l in labels for c in pool.get(l, [])]
        self.negatives = list(negatives)
        # `_unknown_` is drawn word first, then a clip of that word: one word with many clips
        # (Speech Commands' 1,026 "eight") must not become what "unknown" means
        self.by_word = {}
        for kind, pool in (("real", real), ("synth", synth)):
            ws = (words or {}).get(kind, {}).get("_unknown_")
            if ws and len(ws) == len(pool.get("_unknown_", [])):
                groups = {}
                for i, w in enumerate(ws):
                    groups.setdefault(w, []).append(i)
                self.by_word[id(pool)] = list(groups.values())

    def noise(self, n):
        src = self.noises[self.rng.integers(len(self.noises))]
        if self.rng.random() < 0.15:                      # occasionally plain white noise
            return self.rng.standard_normal(n).astype(np.float32)
        a = self.rng.integers(0, max(1, len(src) - n))
        seg = src[a:a + n]
        if len(seg) < n:
            seg = np.pad(seg, (0, n - len(seg)))
        return seg

    def clip(self, label):
        r, s = self.real.get(label, []), self.synth.get(label, [])
        p_real = 0.0 if not r else (1.0 if not s else
                                    (self.real_p if len(r) >= 500 else self.thin_real_p))
        pool = r if self.rng.random() < p_real else s
        groups = self.by_word.get(id(pool)) if label == "_unknown_" else None
        if groups:
            g = groups[self.rng.integers(len(groups))]
            c = pool[g[self.rng.integers(len(g))]].astype(np.float32) / 32768.0
        else:
            c = pool[self.rng.integers(len(pool))].astype(np.float32) / 32768.0
        return c, pool is r

    def other_clip(self):
        """Any training clip (keywords included), as float: context before the window."""
        return self.all_clips[self.rng.integers(len(self.all_clips))].astype(np.float32) / 32768.0

    def perturb(self, c):
        rng = self.rng
        if rng.random() < 0.5:                            # speed (tempo and pitch) +-12 %
            f = rng.uniform(0.88, 1.12)
            n = max(16, int(len(c) / f))
            c = np.interp(np.linspace(0, len(c) - 1, n), np.arange(len(c)), c).astype(np.float32)
        if rng.random() < 0.2:                            # cheap reverberation
            t60 = rng.uniform(0.1, 0.5)
            n = int(min(0.3, t60) * SR)
            ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / (t60 * SR))
            ir[0] = 1.0
            ir /= np.sqrt(np.sum(ir ** 2))
            wet = np.fft.irfft(np.fft.rfft(c, len(c) + n) * np.fft.rfft(ir, len(c) + n))[:len(c)]
            mix = rng.uniform(0.2, 0.7)
            c = ((1 - mix) * c + mix * wet * rms(c) / rms(wet)).astype(np.float32)
        return c

    def vtlp(self, c):
        """Vocal-tract length perturbation (Jaitly & Hinton, 2013): the spectral envelope is
        warped along frequency by a factor of 0.82-1.18 (a shorter or longer vocal tract, so
        other formants at the same pitch and tempo), piecewise linear so that the band below
        4.8 kHz scales and the rest maps onto what is left up to Nyquist. STFT with sqrt-Hann
        windows (512 points, hop 128); magnitudes are interpolated between bins and each bin
        keeps the phase of its nearest source bin; the level is kept (RMS). A TTS engine has a
        few voices: this makes many speakers' formants out of each."""
        n_fft, hop = 512, 128
        a = self.rng.uniform(0.82, 1.18)
        f = np.fft.rfftfreq(n_fft, 1.0 / SR)
        nyq, f_hi = SR / 2, 4800.0
        knee = f_hi * min(a, 1.0) / a                     # source frequency where the scaling ends
        fwd = np.where(f <= knee, f * a, a * knee + (nyq - a * knee) * (f - knee) / (nyq - knee))
        src = np.interp(f, fwd, f) / (SR / n_fft)         # source bin of each target bin
        near = np.clip(np.rint(src).astype(int), 0, len(f) - 1)
        win = np.sqrt(np.hanning(n_fft + 1)[:n_fft])
        x = np.pad(c.astype(np.float64), (n_fft, n_fft))
        n_fr = (len(x) - n_fft) // hop + 1
        idx = np.arange(n_fft)[None, :] + hop * np.arange(n_fr)[:, None]
        X = np.fft.rfft(x[idx] * win, axis=1)
        mag = np.abs(X)
        lo = np.clip(np.floor(src).astype(int), 0, len(f) - 1)
        hi = np.clip(lo + 1, 0, len(f) - 1)
        t = src - lo
        Y = ((1 - t) * mag[:, lo] + t * mag[:, hi]) * np.exp(1j * np.angle(X[:, near]))
        y = np.zeros(len(x))
        np.add.at(y, idx, np.fft.irfft(Y, n_fft, axis=1) * win)
        y = y[n_fft:n_fft + len(c)] / 2.0                 # sqrt-Hann twice at hop n/4 sums to 2
        return (y * rms(c) / max(rms(y), 1e-9)).astype(np.float32)

    def window(self, label):
        """The 1 s window for `label` (float32, W samples) and its signal RMS."""
        rng = self.rng
        w = np.zeros(W, np.float32)
        if label == "_silence_":
            k = rng.random()
            if k < 0.3 and self.real.get("_silence_"):
                c = self.real["_silence_"][rng.integers(len(self.real["_silence_"]))]
                w[:len(c)] = c.astype(np.float32) / 32768.0
                w *= 10 ** (rng.uniform(-20, 6) / 20)
            elif k < 0.85:
                w[:] = self.noise(W) * 10 ** (rng.uniform(-65, -15) / 20)
            else:
                w[:] = rng.standard_normal(W) * 10 ** (rng.uniform(-90, -60) / 20)
            return w, 0.0
        c, is_real = self.clip(label)
        if not is_real and self.vtlp_p > 0 and rng.random() < self.vtlp_p:   # no draw at 0
            c = self.vtlp(c)
        c = self.perturb(c)[:W]
        if is_real and len(c) >= W - 800:                 # real clips: shift by up to 100 ms
            s = int(rng.integers(-1600, 1601))
            c = np.roll(c, s)
            if s > 0:
                c[:s] = 0
            elif s < 0:
                c[s:] = 0
            w[:len(c)] = c
        else:                                             # short clips: anywhere in the window
            a = int(rng.integers(0, W - len(c) + 1))
            w[a:a + len(c)] = c
        w *= 10 ** (rng.uniform(-15, 6) / 20)
        return w, rms(c) * 10 ** 0

    def band_limit(self, x):
        # an ideal low-pass at 3.4-4 kHz: an 8 kHz or telephone recording resampled to 16 kHz
        X = np.fft.rfft(x)
        X[int(len(X) * self.rng.uniform(3400, 4000) / (SR / 2)):] = 0
        return np.fft.irfft(X, len(x)).astype(np.float32)

    def colour(self, x):
        # a random microphone / room colouring: a low shelf of -6..+12 dB below 80-400 Hz and
        # a high shelf of -12..+6 dB above 1.5-5 kHz, as smooth (logistic in log frequency)
        # zero-phase gain curves; the level is kept (RMS), so gain augmentation stays separate
        rng = self.rng
        f = np.fft.rfftfreq(len(x), 1.0 / SR)
        lf = np.log(np.maximum(f, 1.0))
        lo, flo = rng.uniform(-6, 12), rng.uniform(80, 400)
        hi, fhi = rng.uniform(-12, 6), rng.uniform(1500, 5000)
        db = lo / (1 + np.exp((lf - np.log(flo)) * 3)) + hi / (1 + np.exp(-(lf - np.log(fhi)) * 3))
        return shape_keep_level(x, 10 ** (db / 20))

    def time_mask(self, w):
        # SpecAugment's time masks (Park et al., 2019) on the waveform: one or two stretches of
        # 20-80 ms of the word itself silenced before the noise goes in, so the background
        # continues through them (a dropout or a swallowed sound, not digital silence)
        nz = np.flatnonzero(w)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, len(w))
        for _ in range(int(self.rng.integers(1, 3))):
            n = int(self.rng.uniform(0.02, 0.08) * SR)
            a = int(self.rng.integers(lo, max(lo + 1, hi - n)))   # inside the word's extent
            w[a:a + n] = 0
        return w

    def band_stop(self, x):
        # SpecAugment's frequency mask: a band of 1/3 to 1 octave centred at 300-5000 Hz
        # attenuated by 20-40 dB, with raised-cosine edges in log frequency; level kept (RMS)
        rng = self.rng
        f = np.fft.rfftfreq(len(x), 1.0 / SR)
        oct_ = np.log2(np.maximum(f, 1.0) / rng.uniform(300, 5000))
        half = rng.uniform(1 / 6, 1 / 2)
        depth = 10 ** (-rng.uniform(20, 40) / 20)
        inside = np.clip((half - np.abs(oct_)) / (half / 3), 0, 1)   # 1 in the band, ramps at edges
        gain = 1 - (1 - depth) * 0.5 * (1 - np.cos(np.pi * inside))
        return shape_keep_level(x, gain)

    def example(self, label, band=True):
        rng = self.rng
        w, sig = self.window(label)
        # SpecAugment-style masks (--mask-p; no draw at 0, so earlier stages replay exactly)
        masked = self.mask_p > 0 and label != "_silence_" and rng.random() < self.mask_p
        if masked:
            w = self.time_mask(w)
        x = np.zeros(self.pre + W, np.float32)
        x[self.pre:] = w
        kind = rng.random()
        if kind < 0.3:
            pass                                          # zeros: what `classify` feeds
        elif kind < 0.5:
            x[:self.pre] = self.noise(self.pre) * 10 ** (rng.uniform(-60, -15) / 20)
        else:                                             # the tail of another clip (speech)
            c = self.other_clip()
            c = c[-self.pre:] * 10 ** (rng.uniform(-15, 6) / 20)
            x[self.pre - len(c):self.pre] = c
            # a longer context (--context) also holds whole other clips, keywords included,
            # anywhere before that tail: what a live stepper has heard before the window
            for _ in range(int(rng.integers(0, self.pre // W + 1)) if self.pre > W else 0):
                c = self.other_clip()
                a = int(rng.integers(0, max(1, self.pre - len(c) - W // 4)))
                x[a:a + len(c)] += c[:self.pre - a] * 10 ** (rng.uniform(-15, 6) / 20)
        if label != "_silence_" and rng.random() < 0.75:  # background noise at 0-25 dB SNR
            lvl = max(rms(w[w != 0]) if np.any(w) else 0.0, 1e-4) / 10 ** (rng.uniform(0, 25) / 20)
            span = slice(self.pre, None) if kind < 0.3 else slice(0, None)
            x[span] += self.noise(len(x[span])) * lvl
        if self.eq_p > 0 and rng.random() < self.eq_p:    # microphone colouring (no draw at 0)
            x = self.colour(x)
        if masked:
            x = self.band_stop(x)
        if band and rng.random() < self.band_p:           # 8 kHz / telephone band limit
            x = self.band_limit(x)
        return np.clip(x, -1.0, 1.0)

    def neg_stream(self, T):
        """T samples of keyword-free audio as a live stepper hears it (speech_bed, then
        finish_stream); every decoder window in it is a negative (train.py's per-hop loss)."""
        return self.finish_stream(self.speech_bed(T))

    def pos_stream(self, T, label):
        """A keyword said inside running speech: a keyword-free bed (speech_bed) with a gap of
        50-300 ms either side of one perturbed `label` clip at the level of the speech around
        it (+-6 dB), ending 0.1-1.3 s before the stream's end; returns (x, word start, word end)
        in samples. The word's edges are where its 10 ms envelope crosses 10 % of its peak."""
        rng = self.rng
        c, _ = self.clip(label)
        c = self.perturb(c)
        env = np.convolve(np.abs(c), np.ones(160) / 160, "same")
        on = np.flatnonzero(env > 0.1 * env.max()) if env.max() > 0 else np.arange(len(c))
        c = c[on[0]:on[-1] + 1]                           # the word without the clip's padding
        x = self.speech_bed(T)
        lvl = rms(x[x != 0]) if np.any(x) else 0.05
        c = c / max(rms(c), 1e-6) * lvl * 10 ** (rng.uniform(-6, 6) / 20)
        end = int(rng.integers(max(len(c), T - 21 * SR // 16), T - SR // 10))
        start = end - len(c)
        g0, g1 = int(rng.integers(SR // 20, 3 * SR // 10)), int(rng.integers(SR // 20, 3 * SR // 10))
        x[max(0, start - g0):min(T, end + g1)] = 0.0     # a pause around the keyword
        x[start:end] += c
        return self.finish_stream(x), start, end

    def speech_bed(self, T):
        """T samples of running keyword-free sound: pieces of the real negative recordings
        (60 %), `_unknown_` words (30 %) and noise (10 %), each perturbed and at its own level,
        with 0-300 ms gaps, starting part-way into the first piece."""
        rng = self.rng
        x = np.zeros(T, np.float32)
        pos = -int(rng.integers(0, W))                    # start inside the first piece
        while pos < T:
            k = rng.random()
            if k < 0.6 and self.negatives:
                c = self.negatives[rng.integers(len(self.negatives))].astype(np.float32) / 32768.0
                c = c * 10 ** (rng.uniform(-12, 6) / 20)
            elif k < 0.9:
                c, _ = self.clip("_unknown_")
                c = c * 10 ** (rng.uniform(-15, 6) / 20)
            else:
                c = self.noise(int(rng.integers(SR // 4, SR))) * 10 ** (rng.uniform(-50, -15) / 20)
            c = self.perturb(c)
            a, b = max(pos, 0), min(pos + len(c), T)
            if b > a:
                x[a:b] += c[a - pos:b - pos]
            pos += len(c) + int(rng.integers(0, int(0.3 * SR)))
        return x

    def finish_stream(self, x):
        """Background noise, colouring and band limit over a whole stream, as example() does."""
        rng, T = self.rng, len(x)
        if rng.random() < 0.75:                           # background noise at 0-25 dB SNR
            lvl = max(rms(x[x != 0]) if np.any(x) else 0.0, 1e-4) / 10 ** (rng.uniform(0, 25) / 20)
            x += self.noise(T) * lvl
        if self.eq_p > 0 and rng.random() < self.eq_p:
            x = self.colour(x)
        if rng.random() < self.band_p:
            x = self.band_limit(x)
        return np.clip(x, -1.0, 1.0)

    def neg_batch(self, n):
        """(n, pre + W) keyword-free streams."""
        return torch.from_numpy(np.stack([self.neg_stream(self.pre + W) for _ in range(n)]))

    def pos_batch(self, n):
        """(n, pre + W) streams with one keyword each; their label indices (n,) and the word's
        (start, end) samples (n, 2)."""
        ys = self.rng.integers(len(self.keywords), size=n)
        xs, se = [], []
        for k in ys:
            x, a, b = self.pos_stream(self.pre + W, self.keywords[k])
            xs.append(x)
            se.append((a, b))
        y = [self.labels.index(self.keywords[k]) for k in ys]
        return (torch.from_numpy(np.stack(xs)), torch.tensor(y), torch.tensor(se))

    def batch(self, B, weights):
        """B examples, then (--pair-p) band-limited twins of some of them; returns
        x (B + P, T), y (B + P,), and the rows (P,) of the B that the twins copy."""
        ys = self.rng.choice(len(self.labels), size=B, p=weights)
        # no extra random draws when pairing is off: earlier stages replay exactly
        paired = self.rng.random(B) < self.pair_p if self.pair_p > 0 else np.zeros(B, bool)
        xs = [self.example(self.labels[y], band=not q) for y, q in zip(ys, paired)]
        src = np.flatnonzero(paired)
        xs += [np.clip(self.band_limit(xs[i]), -1.0, 1.0) for i in src]
        ys = np.concatenate([ys, ys[src]])
        return (torch.from_numpy(np.stack(xs)), torch.from_numpy(ys.astype(np.int64)),
                torch.from_numpy(src.astype(np.int64)))


def widen_first_block(model, sd, h0):
    """Load the state dict `sd` of a network whose block 0 has h0 channels into `model`, whose
    block 0 is wider (H > h0) and is otherwise the same (Net2Net-style growth in width, Chen et
    al. 2016, with zero weights instead of copies). Every per-channel tensor of the encoder and
    block 0 (norm, SSM rows, D) keeps the old values in channels 0..h0-1; the new channels keep
    their fresh initialisation. The GLU projection (2H, H) = [value rows; gate rows] keeps the
    old rows and gives them zero weights from the new channels, and widen.0 gives the new
    channels zero columns, so the widened network computes exactly the old function, and the
    new channels reach the rest of the network only as training moves widen.0 away from zero
    (its gradient is non-zero at once: the new channels carry the encoded audio)."""
    own = model.state_dict()
    H = own["encoder.weight"].shape[0]
    if set(own) != set(sd):
        raise ValueError(f"its tensors differ from this run's: lacks {sorted(set(own) - set(sd))}, "
                         f"has extra {sorted(set(sd) - set(own))}")
    with torch.no_grad():
        for k, v in sd.items():
            t = own[k]
            v = v.to(t.dtype)
            if t.shape == v.shape:
                t.copy_(v)
            elif k == "blocks.0.out.weight":                    # (2H, H) from (2 h0, h0)
                t[:h0].zero_()
                t[H:H + h0].zero_()
                t[:h0, :h0] = v[:h0]
                t[H:H + h0, :h0] = v[h0:]
            elif k == "blocks.0.out.bias":                      # (2H)
                t[:h0] = v[:h0]
                t[H:H + h0] = v[h0:]
            elif k == "widen.0.weight":                         # (W1, H) from (W1, h0)
                t.zero_()
                t[:, :h0] = v
            elif k.startswith(("encoder.", "blocks.0.")) and t.shape[1:] == v.shape[1:] \
                    and t.shape[0] == H and v.shape[0] == h0:   # per-channel rows
                t[:h0] = v
            else:
                raise ValueError(f"cannot widen tensor {k}: {tuple(v.shape)} -> {tuple(t.shape)}")


def class_weights(labels):
    """Share of each label in a batch: every keyword 7.8 % (the ten Speech Commands keywords:
    78 % in all), at most 78 % for all keywords together, and the rest to `_silence_` and
    `_unknown_` as 8 : 14. With few keywords most examples are then not a keyword: one keyword
    given 78 % of the examples became the model's answer to anything unfamiliar (a synthetic
    "eight" model scored P(eight) >= 0.8 on 81-91 % of the hops of silence and noise)."""
    kw = [i for i, l in enumerate(labels) if not l.startswith("_")]
    each = min(0.078, 0.78 / max(1, len(kw)))
    rest = 1.0 - each * len(kw)
    w = np.array([rest * 8 / 22 if l == "_silence_" else rest * 14 / 22 if l == "_unknown_" else each
                  for l in labels])
    return w / w.sum()


def val_batches(val, labels, preroll, B=32):
    xs, ys = [], []
    for li, l in enumerate(labels):
        for c in val.get(l, []):
            x = np.zeros(preroll + W, np.float32)
            c = c[:W].astype(np.float32) / 32768.0
            x[preroll:preroll + len(c)] = c
            xs.append(x)
            ys.append(li)
    xs, ys = np.stack(xs), np.array(ys)
    for i in range(0, len(xs), B):
        yield torch.from_numpy(xs[i:i + B]), torch.from_numpy(ys[i:i + B])


@torch.no_grad()
def evaluate(model, val, labels, preroll):
    model.eval()
    K = len(labels)
    conf = np.zeros((K, K), np.int64)
    dev = next(model.parameters()).device
    for x, y in val_batches(val, labels, preroll):
        p = model(x.to(dev)).argmax(-1).cpu()
        for a, b in zip(y.numpy(), p.numpy()):
            conf[a, b] += 1
    model.train()
    acc = np.trace(conf) / max(1, conf.sum())
    recall = {labels[i]: round(conf[i, i] / max(1, conf[i].sum()), 3) for i in range(K)}
    return acc, recall, conf


# ----------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Speech Commands-layout training folder of real recordings "
                    "(optional with --synth: a model of synthetic speech only)")
    ap.add_argument("--noise", required=True, help="folder of background-noise files")
    ap.add_argument("--synth", action="append", default=[], help="extra (synthetic) clip folders")
    ap.add_argument("--val", help="validation folder (monitoring only, never trained on)")
    ap.add_argument("--run", required=True, help="checkpoint/log folder (outside the work tree)")
    ap.add_argument("--out", required=True, help="exported safetensors path")
    ap.add_argument("--cache", default=None, help="clip cache folder (default: RUN/../cache)")
    ap.add_argument("--config", default=None, help="JSON overrides of s4twin.DEFAULT_CONFIG")
    ap.add_argument("--labels", default=None, help="comma-separated labels (default: SC12)")
    ap.add_argument("--steps", type=int, default=0, help="total steps (0: from --minutes)")
    ap.add_argument("--minutes", type=float, default=100.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--ssm-lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.02)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda); batches are "
                    "still built on the CPU")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--name", default="s4kws-sc12")
    ap.add_argument("--context", type=int, default=0,
                    help="samples of preceding audio in training examples (default: the model's "
                         "preroll); longer contexts train robustness to what a live stream heard "
                         "before the word. l_max grows to context + 1 s, and the exported preroll "
                         "(the zeros classify puts before a lone clip) to the context, as in the "
                         "training examples whose context is zeros")
    ap.add_argument("--real-p", type=float, default=0.65,
                    help="probability of drawing a real clip for labels with >= 500 real clips "
                         "(--thin-real-p for thinner ones)")
    ap.add_argument("--thin-real-p", type=float, default=0.4,
                    help="the same for labels with fewer than 500 real clips (on and off in the "
                         "Speech Commands train/ here), whose few real clips are otherwise seen "
                         "far more often than the others'")
    ap.add_argument("--band-p", type=float, default=0.12,
                    help="share of examples band-limited to 3.4-4 kHz (8 kHz, telephone)")
    ap.add_argument("--eq-p", type=float, default=0.0,
                    help="share of examples coloured by a random low and high shelf (-6..+12 dB "
                         "below 80-400 Hz, -12..+6 dB above 1.5-5 kHz): microphones and rooms; 0: off")
    ap.add_argument("--vtlp-p", type=float, default=0.0,
                    help="share of synthetic clips whose formants are moved by vocal-tract length "
                         "perturbation (factor 0.82-1.18, pitch and tempo kept): more speakers "
                         "out of a TTS engine's few voices; 0: off")
    ap.add_argument("--mask-p", type=float, default=0.0,
                    help="share of keyword and unknown examples with SpecAugment-style masks: "
                         "1-2 stretches of 20-80 ms of the word silenced and a 1/3-1 octave band "
                         "at 300-5000 Hz attenuated 20-40 dB; 0: off")
    ap.add_argument("--pair-p", type=float, default=0.0,
                    help="share of examples also fed band-limited, with a consistency loss "
                         "pulling the band-limited prediction towards the full-band one; 0: off")
    ap.add_argument("--pair-w", type=float, default=1.0,
                    help="weight of that consistency loss (KL divergence)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="keep an exponential moving average of the weights (and BatchNorm "
                         "statistics) with this decay per step, e.g. 0.999, and export it "
                         "instead of the last weights; 0: off")
    ap.add_argument("--negatives", default=None,
                    help="folder of keyword-free recordings (any length; e.g. speechocean762/): "
                         "pieces of them, with `_unknown_` words and noise, make the negative "
                         "streams of --neg-per-batch")
    ap.add_argument("--neg-holdout", type=int, default=3,
                    help="leave out the --negatives files whose speaker number (first digits in "
                         "the name) is divisible by this (bench/det.sh measures on them); 0: none")
    ap.add_argument("--neg-per-batch", type=int, default=0,
                    help="keyword-free streams added to every batch, each trained at every hop "
                         "(max-pooled: the hop most like a keyword is pushed towards non-keyword "
                         "labels); 0: off")
    ap.add_argument("--neg-w", type=float, default=1.0, help="weight of that per-hop loss")
    ap.add_argument("--neg-stride", type=int, default=5,
                    help="final frames between the hops scored in a negative stream (5 = 20 ms)")
    ap.add_argument("--pos-per-batch", type=int, default=0,
                    help="streams per batch with one keyword said inside running speech "
                         "(Maker.pos_stream), scored per hop like the negative streams")
    ap.add_argument("--pos-w", type=float, default=1.0, help="weight of that per-hop loss")
    ap.add_argument("--pos-after", type=float, default=0.5,
                    help="seconds after a keyword's end in which its best hop is scored")
    ap.add_argument("--init", default=None,
                    help="start a new run (fresh schedule and optimizer) from the model weights "
                         "of another run's ckpt.pt or of an exported .safetensors model; with "
                         "other --labels than its own, every weight but the decoder's; ignored "
                         "when --run already has a checkpoint")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    # Silent prerolls and decaying kernels produce subnormal floats; flushing them to zero
    # made a training step 15 % faster here (0.85 -> 0.71 s) with no visible change in loss.
    torch.set_flush_denormal(True)
    os.makedirs(a.run, exist_ok=True)
    cache = a.cache or os.path.join(os.path.dirname(os.path.abspath(a.run)), "cache")
    cfg = dict(s4twin.DEFAULT_CONFIG)
    if a.config:
        cfg.update(json.loads(a.config))
    if a.labels:
        cfg["labels"] = a.labels.split(",")
    cfg["name"] = a.name
    labels = cfg["labels"]
    context = a.context or cfg["preroll"]
    cfg["l_max"] = max(cfg["l_max"], context + W)
    # a lone clip must be classified after what the zero-context training examples had in front
    # (`context` zeros): exporting a shorter preroll cost the stage-3/4 models 0.5-2.9 points
    cfg["preroll"] = max(cfg["preroll"], context)

    t0 = time.time()
    real, synth, noises, words = load_pools(a.data, a.synth, a.noise, labels, cache)
    negatives, said = (load_negatives(a.negatives, a.neg_holdout,
                                      [l for l in labels if not l.startswith("_")])
                       if a.negatives else ([], 0))
    if (a.neg_per_batch or a.pos_per_batch) and "_unknown_" not in labels:
        sys.exit("train: --neg-per-batch and --pos-per-batch need an _unknown_ label")
    val = load_folder(a.val, labels, cache) if a.val else None
    counts = {l: (len(real[l]), len(synth[l])) for l in labels}
    empty = [l for l in labels if l != "_silence_" and not counts[l][0] + counts[l][1]]
    if empty:
        sys.exit(f"train: no clips for label(s) {', '.join(empty)} in --data or --synth (a folder "
                 "per label, named as in --labels; _silence_ alone may be left out)")
    log(a.run, f"data loaded in {time.time() - t0:.0f} s: (real, synth) per label {counts}; "
               f"{len(noises)} noise files; {len(negatives)} negative recordings "
               f"({sum(len(n) for n in negatives) / SR / 60:.1f} min; {said} left out: their "
               f"transcript says a keyword); "
               f"val {sum(len(v) for v in val.values()) if val else 0}")

    torch.manual_seed(a.seed)
    model = s4twin.S4KWS(cfg, seed=a.seed).to(a.device)
    ssm_names = ("A_real", "A_imag", "inv_dt", ".B", ".P")
    ssm_p = [p for n, p in model.named_parameters() if n.endswith(ssm_names)]
    nd_p = [p for n, p in model.named_parameters()
            if not n.endswith(ssm_names) and (p.dim() < 2 or "norm" in n)]
    wd_p = [p for n, p in model.named_parameters()
            if not n.endswith(ssm_names) and not (p.dim() < 2 or "norm" in n)]
    opt = torch.optim.AdamW([
        {"params": ssm_p, "lr": a.ssm_lr, "weight_decay": 0.0, "base": a.ssm_lr},
        {"params": nd_p, "lr": a.lr, "weight_decay": 0.0, "base": a.lr},
        {"params": wd_p, "lr": a.lr, "weight_decay": a.wd, "base": a.lr}])
    n_params = sum(p.numel() for p in model.parameters())

    ck = os.path.join(a.run, "ckpt.pt")
    state = {"step": 0, "total": a.steps, "elapsed": 0.0, "history": []}
    rng = np.random.default_rng(a.seed)
    if os.path.exists(ck):
        z = torch.load(ck, map_location="cpu")
        model.load_state_dict(z["model"])
        opt.load_state_dict(z["opt"])
        state = z["state"]
        rng.bit_generator.state = z["rng"]
        torch.set_rng_state(z["torch_rng"])
        log(a.run, f"resumed at step {state['step']} ({state['elapsed'] / 60:.1f} min done)")
    elif a.init:
        if a.init.endswith(".safetensors"):
            # an exported model (e.g. a stage's EMA export, or the shipped default): its
            # weights and BatchNorm statistics; the training record comes from its metadata
            m0 = s4twin.load_safetensors_model(a.init)
            tr = json.loads(m0.cfg.get("training", "{}"))
            z = {"model": m0.state_dict(), "cfg": m0.cfg,
                 "state": {"step": tr.get("steps", 0), "elapsed": tr.get("seconds", 0)}}
        else:
            z = torch.load(a.init, map_location="cpu")
        zw, zp, n0 = z["cfg"]["widths"], z["cfg"]["pools"], len(z["cfg"]["widths"])
        grown = (zw == cfg["widths"][:n0] and zp == cfg["pools"][:n0] and len(cfg["widths"]) > n0
                 and all(w == zw[-1] for w in cfg["widths"][n0:])
                 and all(p == 1 for p in cfg["pools"][n0:]))
        # block 0 widened (same depth, pools and other widths): see widen_first_block()
        wide0 = (len(zw) == len(cfg["widths"]) > 1 and zp == cfg["pools"] and zw[1:] == cfg["widths"][1:]
                 and cfg["widths"][1] != cfg["widths"][0] > zw[0] and zw[1] != zw[0])
        if (zw != cfg["widths"] or zp != cfg["pools"]) and not (grown or wide0):
            sys.exit(f"--init {a.init}: its widths/pools differ from this run's config (a run may "
                     f"only append blocks of the last width with pool 1, or widen block 0)")
        if wide0:
            try:
                widen_first_block(model, z["model"], zw[0])
            except ValueError as e:
                sys.exit(f"--init {a.init}: {e}")
            log(a.run, f"block 0 widened from {zw[0]} to {cfg['widths'][0]} channels (the new ones "
                       f"start unheard: zero weights into the old channels and into widen.0)")
        else:
            # other labels (a base trained on real speech of other words, for keywords that
            # have only synthetic speech): everything but the decoder, which starts fresh
            relabel = z["cfg"].get("labels") != labels
            zm = {k: v for k, v in z["model"].items() if not (relabel and k.startswith("decoder."))}
            missing, unexpected = model.load_state_dict(zm, strict=not (grown or relabel))
            if relabel:
                missing = [k for k in missing if not k.startswith("decoder.")]
                assert grown or not (missing or unexpected), (missing, unexpected)
                log(a.run, f"labels {','.join(z['cfg']['labels'])} -> {','.join(labels)}: the "
                           f"decoder starts fresh, every other weight from {a.init}")
        if grown:
            # appended blocks start as the identity: a zero output projection makes each
            # residual block add GLU(0) = 0, so training resumes from the same function
            assert not unexpected and all(k.startswith("blocks.") and int(k.split(".")[1]) >= n0
                                          for k in missing), (missing, unexpected)
            with torch.no_grad():
                for blk in model.blocks[n0:]:
                    blk.out.weight.zero_()
                    blk.out.bias.zero_()
            log(a.run, f"grown from {n0} to {len(cfg['widths'])} blocks (new blocks start as the identity)")
        state["init"] = {"from": os.path.abspath(a.init), "steps": z["state"]["step"],
                         "seconds": round(z["state"]["elapsed"])}
        log(a.run, f"initialised from {a.init} (step {z['state']['step']}, "
                   f"{z['state']['elapsed'] / 60:.1f} min of training)")
    maker = Maker(labels, real, synth, noises, context, rng, a.real_p, a.band_p, a.pair_p,
                  a.eq_p, a.mask_p, a.thin_real_p, words, negatives, a.vtlp_p)
    kw_mask = torch.tensor([not l.startswith("_") for l in labels], device=a.device)
    # EMA of every float tensor of the state dict (weights and BatchNorm statistics): an
    # average over the last ~1/(1-decay) steps generalises better than the last step's weights
    ema = None
    if a.ema > 0:
        ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if os.path.exists(ck) and "ema" in z:
            ema = z["ema"]
    cw = class_weights(labels)
    log(a.run, f"model {n_params} parameters, config {json.dumps(cfg)}")

    def save():
        tmp = ck + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "cfg": cfg, **({"ema": ema} if ema is not None else {})}, tmp)
        os.replace(tmp, ck)

    model.train()
    t_last, loss_acc, acc_acc, n_acc, stream_acc = time.time(), 0.0, 0.0, 0, 0.0
    budget = a.minutes * 60.0

    def progress():
        # --steps: a fixed step schedule (exactly reproducible). --minutes: the cosine schedule
        # runs on wall-clock time, so the run ends on time however busy the machine is.
        return state["step"] / a.steps if a.steps else state["elapsed"] / budget

    while progress() < 1.0:
        ts = time.time()
        s, p = state["step"], progress()
        f = min(1.0, (s + 1) / a.warmup) * 0.5 * (1 + math.cos(math.pi * p))
        for g in opt.param_groups:
            g["lr"] = g["base"] * max(f, 0.02)
        x, y, src = maker.batch(a.batch, cw)
        nb, nn, streams = len(x), a.neg_per_batch, a.neg_per_batch or a.pos_per_batch
        if nn:
            x = torch.cat([x, maker.neg_batch(nn)])
        if a.pos_per_batch:
            xp, yp, se = maker.pos_batch(a.pos_per_batch)
            x = torch.cat([x, xp])
            yp, se = yp.to(a.device), se.to(a.device)
        x, y = x.to(a.device, non_blocking=True), y.to(a.device, non_blocking=True)
        if streams:
            # one forward pass for all rows (BatchNorm's batch statistics see them all)
            hop = model.hop_logits(x, a.neg_stride)       # (rows, hops, labels)
            logits = hop[:nb, -1]
            lp = F.log_softmax(hop[nb:], -1)              # (streams, hops, labels)
            # log P(not a keyword) per hop; the loss is at a stream's worst hop (max-pooling,
            # Sun et al. 2016), which a threshold on the smoothed score would have fired on
            lnk = torch.logsumexp(lp.masked_fill(kw_mask, -float("inf")), -1)
            neg_loss = -lnk[:nn].min(-1).values.mean() if nn else hop.new_zeros(())
        else:
            logits = model(x)
        if a.pos_per_batch:
            th = hop.shape[1]
            ends = model.hop_ends(x.shape[1], th, a.neg_stride)          # (hops,) samples
            lpk = lp[nn:].gather(-1, yp[:, None, None].expand(-1, th, 1))[..., 0]  # (pos, hops)
            win = (ends[None] >= se[:, 1:]) & (ends[None] <= se[:, 1:] + int(a.pos_after * SR))
            # the keyword's best hop just after it ends (max-pooling over its window) ...
            pos_loss = -lpk.masked_fill(~win, -float("inf")).max(-1).values.mean()
            # ... and no keyword in the windows that end before it begins
            pre = ends[None] < se[:, :1]
            worst = lnk[nn:].masked_fill(~pre, float("inf")).min(-1).values
            if pre.any():
                pos_loss = pos_loss - worst[pre.any(-1)].mean()
        loss = F.cross_entropy(logits, y, label_smoothing=a.smoothing)
        if streams:
            stream_loss = a.neg_w * neg_loss + (a.pos_w * pos_loss if a.pos_per_batch else 0.0)
            loss = loss + stream_loss
            stream_acc += stream_loss.item()
        if len(src):                                      # band-limited twins: rows B..
            twin = F.log_softmax(logits[a.batch:], -1)    # (P, labels)
            full = F.softmax(logits[src.to(a.device)].detach(), -1)
            loss = loss + a.pair_w * F.kl_div(twin, full, reduction="batchmean")
        logits, y = logits[:a.batch], y[:a.batch]        # train-acc over the batch proper
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                d = min(a.ema, (1 + state["step"]) / (10 + state["step"]))
                for k, v in model.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
                    else:
                        ema[k].copy_(v)
        state["step"] += 1
        loss_acc += loss.item()
        acc_acc += (logits.argmax(-1) == y).float().mean().item()
        n_acc += 1
        if state["step"] % 50 == 0:
            log(a.run, f"step {state['step']} ({100 * progress():.1f}%) loss {loss_acc / n_acc:.3f} "
                       f"train-acc {acc_acc / n_acc:.3f} "
                       + (f"stream-loss {stream_acc / n_acc:.3f} " if streams else "")
                       + f"lr {opt.param_groups[1]['lr']:.2e} {(time.time() - t_last) / n_acc:.2f} s/step")
            t_last, loss_acc, acc_acc, n_acc, stream_acc = time.time(), 0.0, 0.0, 0, 0.0
        if val and state["step"] % a.val_every == 0:
            acc, rec, _ = evaluate(model, val, labels, cfg["preroll"])
            state["history"].append({"step": state["step"], "val_acc": float(acc)})
            log(a.run, f"VAL step {state['step']} acc {acc:.4f} recall {rec}")
            if ema is not None:
                live = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.load_state_dict(ema)
                acc, _, _ = evaluate(model, val, labels, cfg["preroll"])
                model.load_state_dict(live)
                log(a.run, f"VAL step {state['step']} ema acc {acc:.4f}")
        if state["step"] % a.ckpt_every == 0:
            save()
        state["elapsed"] += time.time() - ts
    save()
    cfg["training"] = {"steps": state["step"], "batch": a.batch, "seconds": round(state["elapsed"]),
                       "seed": a.seed, "init": state.get("init"), "real": {l: counts[l][0] for l in labels},
                       "synthetic": {l: counts[l][1] for l in labels},
                       "real_p": a.real_p, "band_p": a.band_p, "ema": a.ema,
                       **({"pair_p": a.pair_p, "pair_w": a.pair_w} if a.pair_p > 0 else {}),
                       **({"eq_p": a.eq_p} if a.eq_p > 0 else {}),
                       **({"vtlp_p": a.vtlp_p} if a.vtlp_p > 0 else {}),
                       **({"mask_p": a.mask_p} if a.mask_p > 0 else {}),
                       **({"thin_real_p": a.thin_real_p} if a.thin_real_p != 0.4 else {}),
                       **({"negatives": len(negatives), "neg_holdout": a.neg_holdout,
                           "neg_per_batch": a.neg_per_batch, "neg_w": a.neg_w}
                          if a.neg_per_batch else {}),
                       **({"pos_per_batch": a.pos_per_batch, "pos_w": a.pos_w,
                           "pos_after": a.pos_after} if a.pos_per_batch else {})}
    if ema is not None:
        if val:
            acc, _, _ = evaluate(model, val, labels, cfg["preroll"])
            log(a.run, f"FINAL val acc of the last weights (not exported) {acc:.4f}")
        model.load_state_dict(ema)
    model.cfg = cfg
    model.eval()
    model.export(a.out)
    if val:
        acc, rec, conf = evaluate(model, val, labels, cfg["preroll"])
        log(a.run, f"FINAL val acc {acc:.4f} recall {rec}\nconfusion {conf.tolist()}")
    log(a.run, f"exported {a.out} after {state['step']} steps, {state['elapsed'] / 3600:.2f} h")


if __name__ == "__main__":
    main()
