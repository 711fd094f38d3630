#!/usr/bin/python3
"""Synthetic speech builder for the s4kws keyword model (issue 3, data part).

Speaks the ten keywords and many non-keywords with every Debian TTS voice that
works on this machine and writes them in the Speech Commands layout, so the
trainer reads them like real data:

    DIR/<label>/<word>_<engine>_<n>.wav     label in yes no up down left right on off stop go _unknown_
    DIR/manifest.json                       counts per label and engine, stats, seed, command

Every clip is 16 kHz mono 16-bit PCM, trimmed of leading and trailing silence
(sox `silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse`), at most 1.0 s
long (clips of 1.0-1.3 s are sped up with sox `tempo -s`, longer ones are
dropped), and peak-normalised to a random level between -12 and -1 dBFS.

Voices used, and why others are not (see feasibility.md section 4; every voice
below is also probed with "yes" at start-up and left out if it is silent):
  * espeak-ng 1.51: the 8 English accents that need no MBROLA (en-gb, en-us,
    en-gb-scotland, en-gb-x-gbclan, en-gb-x-rp, en-gb-x-gbcwmd, en-029,
    en-us-nyc) x the variants listed by `espeak-ng --voices=variant` (or none),
    x pitch -p 10..90 x speed -s 100..200 wpm x amplitude -a 60..160.
    Not used: the mb-*/us-mbrola-* and en-<language> MBROLA voices, which are
    listed but produce no audio because mbrola is not in Debian main.
  * flite 2.2: kal, kal16, awb, rms, slt with --setf duration_stretch 0.9..1.5
    (raised for short words from a calibration pass: flite says "up" in
    0.06-0.2 s, so such words are slowed to a 0.30..0.65 s target, stretch <= 3)
    and --setf int_f0_target_mean (80..150 Hz male, 140..230 Hz slt), plus an
    optional sox pitch shift (+-250 cents) since the clustergen voices largely
    ignore the f0 target. Not used: awb_time, a limited-domain time-of-day voice
    that says "yes" in 0.14 s at RMS 0.0004.
  * festival 2.5: kal_diphone, ked_diphone, cmu_us_slt_arctic_hts, run in batch
    mode (one `festival -b` scheme script per voice and chunk, one
    `utt.save.wave` per clip; one process per word would cost 0.22 s a clip),
    with the length varied (Duration_Stretch for the diphone voices, hts_engine
    -r for slt_hts; chosen per word from a calibration pass so each clip lasts
    0.30..0.65 s, because the diphone voices say "on" in 0.09 s), the diphone
    voices' LR intonation target f0 mean/std varied, and an optional sox pitch
    shift (hts_engine's -fm has no effect here). No other English
    festvox voices exist in bookworm main.

The plan (word, engine, voice, every parameter, output level) is drawn up front
from random.Random(seed), so it does not depend on --jobs or on resumption.
Clips that already exist are skipped (a re-run resumes); dropped clips leave a
marker in DIR/.work/dropped so they are not retried. After generation every clip
is re-read; empty, near-silent (RMS < 0.003) or too short (< 0.12 s) ones are
removed and counted.

With --keywords "lights on,computer" it speaks those instead of the ten Speech
Commands keywords (labels lights-on and computer; every other word is _unknown_),
for a model of one's own keywords (README.md, "Your own keywords"). Phrases over
1.3 s are dropped (the model's window is 1 s).

usage: /usr/bin/python3 weights/synth.py --out DIR [--seed 1] [--jobs 2]
           [--per-keyword N] [--per-unknown-word M] [--tiny] [--engines espeak,flite,festival]
           [--keywords WORD,WORD,...] [--near WORD,WORD,...]
"""

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
import wave

import numpy as np

SR = 16000
MAX_LEN_S = 1.0
MAX_TEMPO = 1.3          # clips up to 1.3 s are sped up to fit 1.0 s, longer ones dropped
MIN_RMS = 0.003          # near-silence threshold (full scale = 1.0)
MIN_LEN_S = 0.12         # shorter clips after trimming are not a whole word
TRIM = ['silence', '1', '0.02', '0.5%', 'reverse', 'silence', '1', '0.02', '0.5%', 'reverse']

KEYWORDS = ['yes', 'no', 'up', 'down', 'left', 'right', 'on', 'off', 'stop', 'go']
# Real Speech Commands has under 200 clips each of these: give them more synthetic ones.
THIN_KEYWORDS = {'on': 1.5, 'off': 1.5}

SC_UNKNOWN = ['bed', 'bird', 'cat', 'dog', 'eight', 'five', 'four', 'happy', 'house',
              'marvin', 'nine', 'one', 'seven', 'sheila', 'six', 'three', 'tree', 'two',
              'wow', 'zero', 'backward', 'forward', 'follow', 'learn', 'visual']

# Common English words, many of them near-misses of a keyword (sound, spelling
# or a keyword inside a phrase), all labelled _unknown_.
COMMON_UNKNOWN = [
    # near yes
    'yet', 'yeah', 'yep', 'yes sir', 'less', 'mess', 'guess', 'yesterday', 'chess',
    # near no
    'know', 'note', 'nope', 'nose', 'snow', 'no way', 'nobody', 'noon',
    # near up
    'cup', 'pup', 'upper', 'ups', 'upon', 'setup',
    # near down
    'town', 'downtown', 'gown', 'dawn', 'round', 'sound',
    # near left / right
    'lift', 'leftover', 'left hand', 'theft', 'write', 'light', 'night', 'ride',
    'bright', 'white', 'right now', 'lights', 'fight', 'rice',
    # near on / off
    'often', 'of', 'onto', 'own', 'offer', 'honest', 'online', 'soft', 'cough',
    'all', 'in', 'an', 'odd', 'oath',
    # near stop
    'stock', 'stuff', 'top', 'stopwatch', 'shop', 'drop', 'step', 'stomp',
    # near go
    'goal', 'go on', 'going', 'gone', 'goat', 'ago', 'ghost', 'show', 'toe',
    # assistant-style and filler words
    'below', 'hello', 'okay', 'yellow', 'open', 'close', 'music', 'coffee', 'weather',
    'play', 'pause', 'next', 'water', 'sorry', 'please', 'thanks', 'maybe', 'later',
    'never', 'ever', 'alright', 'start', 'cancel', 'volume', 'timer', 'hey', 'what',
    'morning', 'today', 'window',
]

ESPEAK_ACCENTS = ['en-gb', 'en-us', 'en-gb-scotland', 'en-gb-x-gbclan', 'en-gb-x-rp',
                  'en-gb-x-gbcwmd', 'en-029', 'en-us-nyc']
FLITE_VOICES = ['kal', 'kal16', 'awb', 'rms', 'slt']
FLITE_FEMALE = {'slt'}
FESTIVAL_VOICES = ['kal_diphone', 'ked_diphone', 'cmu_us_slt_arctic_hts']
FESTIVAL_DIPHONE = {'kal_diphone', 'ked_diphone'}
ENGINE_SHARE = {'espeak': 0.55, 'flite': 0.25, 'festival': 0.20}
FESTIVAL_CHUNK = 200     # utterances per festival process (resume and progress granularity)


def unknown_words(keywords=KEYWORDS, extra=()):
    seen, out = set(keywords), []
    for w in list(extra) + SC_UNKNOWN + COMMON_UNKNOWN:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def slug(word):
    return word.replace(' ', '-')


def espeak_variants():
    """Variant names from `espeak-ng --voices=variant` (file column '!v/<name>')."""
    try:
        txt = subprocess.run(['espeak-ng', '--voices=variant'], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    names = []
    for line in txt.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith('!v/'):
            names.append(parts[4][3:])
    return sorted(set(names))


# ---------------------------------------------------------------- audio helpers

def read_wav(path):
    """Returns float32 samples in [-1, 1] of a 16 kHz mono 16-bit WAV."""
    with wave.open(path, 'rb') as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f'{path}: expected mono 16-bit')
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype='<i2').astype(np.float32) / 32768.0


def write_wav(path, x):
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype('<i2')
    tmp = path + '.part'
    with wave.open(tmp, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def run_quiet(cmd, timeout=60):
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f'{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors="replace")[-200:]}')


def finish(raw, spec, tmpdir):
    """Turns one synthesiser output into the final clip. Returns (status, reason)."""
    out = spec['out']
    base = os.path.join(tmpdir, spec['name'])
    t16 = base + '.16k.wav'
    try:
        # -G guards against clipping in rate/pitch; trimming runs on the
        # synthesiser's own level so the RMS check below judges its output.
        fx = []
        if spec.get('cents'):
            fx += ['pitch', str(spec['cents'])]
        run_quiet(['sox', '-q', '-G', raw, '-b', '16', '-c', '1', '-e', 'signed-integer', t16]
                  + fx + ['rate', str(SR)] + TRIM)
        x = read_wav(t16)
        dur = len(x) / SR
        if len(x) == 0:
            return 'dropped', 'empty'
        if dur > MAX_LEN_S:
            factor = dur / (MAX_LEN_S - 0.01)
            if factor > MAX_TEMPO:
                return 'dropped', 'too_long'
            t2 = base + '.tempo.wav'
            run_quiet(['sox', '-q', '-G', t16, t2, 'tempo', '-s', f'{factor:.4f}'])
            x = read_wav(t2)
            os.unlink(t2)
            x = x[:int(MAX_LEN_S * SR)]
        if len(x) < MIN_LEN_S * SR:
            return 'dropped', 'too_short'
        if rms(x) < MIN_RMS or float(np.max(np.abs(x))) < 1e-3:
            return 'dropped', 'near_silent'
        x = x * (10.0 ** (spec['level_db'] / 20.0) / float(np.max(np.abs(x))))
        write_wav(out, x)
        return 'ok', 'tempo' if dur > MAX_LEN_S else ''
    finally:
        for p in (t16, raw):
            if os.path.exists(p):
                os.unlink(p)


# ---------------------------------------------------------------- workers

def synth_one(spec, tmpdir):
    raw = os.path.join(tmpdir, spec['name'] + '.raw.wav')
    if spec['engine'] == 'espeak':
        p = spec['params']
        run_quiet(['espeak-ng', '-v', p['voice'], '-p', str(p['pitch']), '-s', str(p['speed']),
                   '-a', str(p['amp']), '-w', raw, spec['word']])
    elif spec['engine'] == 'flite':
        p = spec['params']
        run_quiet(['flite', '-voice', p['voice'], '-t', spec['word'], '-o', raw,
                   '--setf', f'duration_stretch={p["stretch"]:.3f}',
                   '--setf', f'int_f0_target_mean={p["f0"]:.1f}'])
    else:
        raise ValueError(spec['engine'])
    return finish(raw, spec, tmpdir)


def festival_scheme(voice, specs, tmpdir):
    lines = [f'(voice_{voice})']
    for s in specs:
        p = s['params']
        raw = os.path.join(tmpdir, s['name'] + '.raw.wav')
        if voice in FESTIVAL_DIPHONE:
            lines.append(f"(Parameter.set 'Duration_Stretch {p['stretch']:.3f})")
            lines.append(f"(set! int_lr_params '((target_f0_mean {p['f0']:.1f}) "
                         f"(target_f0_std {p['f0std']:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
        else:
            # HTS ignores Duration_Stretch (and its -fm pitch option); hts_engine's
            # -r speed rate works (< 1 is slower).
            lines.append(f"(set! hts_engine_params (append {voice}::hts_engine_params "
                         f"(list '(\"-r\" {1.0 / p['stretch']:.3f}))))")
        lines.append(f'(set! u (Utterance Text "{s["word"]}"))')
        lines.append('(utt.synth u)')
        lines.append(f'(utt.save.wave u "{raw}" \'riff)')
    return '\n'.join(lines) + '\n'


def festival_calibrate(wanted, tmpdir, cache):
    """Trimmed length (s) of every word at stretch 1.0 per festival voice.

    The diphone voices reduce function words ("on" lasts 0.09 s, "up" 0.11 s),
    far shorter than people say them in isolation, so each clip's stretch is
    chosen to reach a target length drawn from 0.30..0.65 s instead of a fixed
    range. Cached in `cache` (deterministic, so resumption sees the same plan).
    """
    table = {}
    if os.path.exists(cache):
        with open(cache) as f:
            table = json.load(f)
    for v, words in sorted(wanted.items()):
        have = table.get(v, {})
        need = [w for w in sorted(words) if w not in have]
        if not need:
            continue
        specs = [{'name': f'cal_{v}_{i}', 'word': w, 'params': {'stretch': 1.0, 'f0': 105, 'f0std': 14}}
                 for i, w in enumerate(need)]
        scm = os.path.join(tmpdir, f'cal_{v}.scm')
        with open(scm, 'w') as f:
            f.write(festival_scheme(v, specs, tmpdir))
        try:
            run_quiet(['festival', '-b', scm], timeout=600)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        os.unlink(scm)
        for s in specs:
            raw = os.path.join(tmpdir, s['name'] + '.raw.wav')
            t16 = raw + '.16k.wav'
            d = 0.0
            try:
                run_quiet(['sox', '-q', '-G', raw, '-b', '16', '-c', '1', t16, 'rate', str(SR)] + TRIM)
                d = len(read_wav(t16)) / SR
            except (RuntimeError, ValueError, OSError, EOFError, wave.Error):
                pass
            for q in (raw, t16):
                if os.path.exists(q):
                    os.unlink(q)
            have[s['word']] = round(d, 4)
        table[v] = have
    with open(cache + '.part', 'w') as f:
        json.dump(table, f, indent=1)
    os.replace(cache + '.part', cache)
    return table


def festival_batch(voice, specs, tmpdir):
    """Speaks specs in one festival process; if festival aborts on an utterance
    (the diphone voices do on some strongly stretched words: "Target pitchmarks
    end before end of target segment timings"), that utterance is dropped and
    the rest run in a fresh process."""
    scm = os.path.join(tmpdir, f'fest_{voice}_{specs[0]["name"]}.scm')
    raw = {s['name']: os.path.join(tmpdir, s['name'] + '.raw.wav') for s in specs}
    crashed = {}
    pending, idle = list(specs), 0
    while pending:
        with open(scm, 'w') as f:
            f.write(festival_scheme(voice, pending, tmpdir))
        err = ''
        try:
            run_quiet(['festival', '-b', scm], timeout=1200)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            err = str(e)
        missing = [s for s in pending if not os.path.exists(raw[s['name']])]
        if not err or not missing:
            break
        idle = idle + 1 if len(missing) == len(pending) else 0
        if idle > 5:                      # festival itself is broken: give up on this batch
            for s in missing:
                crashed[s['name']] = err
            break
        crashed[missing[0]['name']] = err     # the utterance festival died on
        pending = missing[1:]
    os.unlink(scm)
    res = []
    for s in specs:
        if s['name'] in crashed:
            res.append((s, 'dropped', 'festival_crash'))
            continue
        if not os.path.exists(raw[s['name']]):
            res.append((s, 'failed', 'festival: no output'))
            continue
        try:
            st, why = finish(raw[s['name']], s, tmpdir)
        except (RuntimeError, ValueError, OSError, EOFError, wave.Error) as e:
            st, why = 'failed', str(e)[:160]
        res.append((s, st, why))
    return res


def run_task(task):
    kind, payload, tmpdir = task
    if kind == 'festival':
        voice, specs = payload
        return festival_batch(voice, specs, tmpdir)
    try:
        st, why = synth_one(payload, tmpdir)
    except (RuntimeError, ValueError, OSError, EOFError, wave.Error,
            subprocess.TimeoutExpired) as e:
        st, why = 'failed', str(e)[:160]
    return [(payload, st, why)]


# ---------------------------------------------------------------- probe and plan

def probe_voices(engines, tmpdir):
    """Speaks "yes" with every base voice; returns the voices that make audio."""
    ok = {'espeak': [], 'flite': [], 'festival': []}
    report = {}

    def check(path):
        try:
            out = os.path.join(tmpdir, 'probe16.wav')
            run_quiet(['sox', '-q', '-G', path, '-b', '16', '-c', '1', out, 'rate', str(SR)] + TRIM)
            x = read_wav(out)
            return len(x) / SR, rms(x)
        except (RuntimeError, ValueError, OSError, EOFError, wave.Error):
            return 0.0, 0.0

    def judge(engine, voice, path):
        d, r = check(path) if os.path.exists(path) else (0.0, 0.0)
        good = d > 0.2 and r >= 0.005
        report[f'{engine}:{voice}'] = {'len_s': round(d, 3), 'rms': round(r, 4), 'used': good}
        if good:
            ok[engine].append(voice)
        if os.path.exists(path):
            os.unlink(path)          # a later failing voice must not be judged on this file

    p = os.path.join(tmpdir, 'probe.wav')
    if 'espeak' in engines:
        for v in ESPEAK_ACCENTS:
            try:
                run_quiet(['espeak-ng', '-v', v, '-w', p, 'yes'])
            except (RuntimeError, OSError):
                pass
            judge('espeak', v, p)
    if 'flite' in engines:
        for v in FLITE_VOICES:
            try:
                run_quiet(['flite', '-voice', v, '-t', 'yes', '-o', p])
            except (RuntimeError, OSError):
                pass
            judge('flite', v, p)
    if 'festival' in engines:
        specs = [{'name': f'probe_{v}', 'word': 'yes', 'params': {'stretch': 1.0, 'f0': 105, 'f0std': 14}}
                 for v in FESTIVAL_VOICES]
        for v, s in zip(FESTIVAL_VOICES, specs):
            scm = os.path.join(tmpdir, 'probe.scm')
            with open(scm, 'w') as f:
                f.write(festival_scheme(v, [s], tmpdir))
            try:
                run_quiet(['festival', '-b', scm])
            except (RuntimeError, OSError, subprocess.TimeoutExpired):
                pass
            raw = os.path.join(tmpdir, s['name'] + '.raw.wav')
            judge('festival', v, raw)
    for q in os.listdir(tmpdir):
        if q.startswith('probe'):
            os.unlink(os.path.join(tmpdir, q))
    return ok, report


def flite_len(job):
    voice, word, tmpdir = job
    raw = os.path.join(tmpdir, f'cal_{voice}_{slug(word)}.wav')
    t16 = raw + '.16k.wav'
    d = 0.0
    try:
        run_quiet(['flite', '-voice', voice, '-t', word, '-o', raw])
        run_quiet(['sox', '-q', '-G', raw, '-b', '16', '-c', '1', t16, 'rate', str(SR)] + TRIM)
        d = len(read_wav(t16)) / SR
    except (RuntimeError, ValueError, OSError, EOFError, wave.Error, subprocess.TimeoutExpired):
        pass
    for q in (raw, t16):
        if os.path.exists(q):
            os.unlink(q)
    return voice, word, round(d, 4)


def flite_calibrate(wanted, tmpdir, cache, jobs):
    """Trimmed length (s) of every word at stretch 1.0 per flite voice (cached)."""
    table = {}
    if os.path.exists(cache):
        with open(cache) as f:
            table = json.load(f)
    need = [(v, w, tmpdir) for v, words in sorted(wanted.items()) for w in sorted(words)
            if w not in table.get(v, {})]
    if need:
        with multiprocessing.Pool(max(1, jobs)) as pool:
            for v, w, d in pool.imap_unordered(flite_len, need, chunksize=8):
                table.setdefault(v, {})[w] = d
        with open(cache + '.part', 'w') as f:
            json.dump(table, f, indent=1)
        os.replace(cache + '.part', cache)
    return table


def make_spec(rng, word, label, engine, n, voices, variants, lengths):
    p = {}
    cents = 0
    if engine == 'espeak':
        accent = rng.choice(voices['espeak'])
        var = rng.choice(variants + [''] * max(1, len(variants) // 10))   # ~10 % plain voice
        p = {'voice': accent + ('+' + var if var else ''), 'pitch': rng.randint(10, 90),
             'speed': rng.randint(100, 200), 'amp': rng.randint(60, 160)}
    elif engine == 'flite':
        v = rng.choice(voices['flite'])
        f0 = rng.uniform(140, 230) if v in FLITE_FEMALE else rng.uniform(80, 150)
        u = rng.uniform(0.9, 1.5)
        # Short words ("up" is 0.06-0.2 s at stretch 1) are slowed to a target
        # length derived from the same draw, so the random stream stays the same.
        base = lengths.get(v, {}).get(word, 0.0)
        target = 0.30 + (u - 0.9) / 0.6 * 0.35
        p = {'voice': v, 'stretch': max(u, min(3.0, target / base)) if base > 0.02 else u, 'f0': f0}
        if rng.random() < 0.6:
            cents = rng.randint(-250, 250)
    else:
        v = rng.choice(voices['festival'])
        base = lengths.get(v, {}).get(word, 0.0)
        target = rng.uniform(0.30, 0.65)
        # no extra draw when the length is unknown: the stream must not depend on it
        stretch = (min(3.5, max(0.85, target / base)) if base > 0.02
                   else 0.9 + (target - 0.30) / 0.35 * 0.5)
        p = {'voice': v, 'stretch': stretch, 'f0': rng.uniform(80, 160),
             'f0std': rng.uniform(8, 25)}
        if rng.random() < 0.6:
            cents = rng.randint(-250, 250)
    name = f'{slug(word)}_{engine}_{n}'
    return {'word': word, 'label': label, 'engine': engine, 'n': n, 'name': name,
            'params': p, 'cents': cents, 'level_db': round(rng.uniform(-12.0, -1.0), 2)}


def plan_items(args):
    """(word, label, count) for every word to speak."""
    kws = args.keywords
    unk = unknown_words(kws, args.near)
    thin = THIN_KEYWORDS if kws == KEYWORDS else {}
    if args.tiny:
        pick = random.Random(args.seed + 1000).sample(unk, 20)
        return [(w, slug(w), 5) for w in kws] + [(w, '_unknown_', 1) for w in sorted(pick)]
    return ([(w, slug(w), int(round(args.per_keyword * thin.get(w, 1.0)))) for w in kws]
            + [(w, '_unknown_', args.per_unknown_word) for w in unk])


def parse_keywords(text):
    """The --keywords list: lower-case words or short phrases of letters, apostrophes and single
    spaces (they go into TTS command lines and festival scheme strings); None if one is not."""
    kws = [' '.join(w.strip().lower().split()) for w in text.split(',')]
    ok = all(w and w[0].isalpha() and all(ch.isalpha() and ch.isascii() or ch in " '" for ch in w)
             for w in kws)
    return kws if ok and len(set(kws)) == len(kws) else None


def make_plan(args, voices, variants, lengths):
    rng = random.Random(args.seed)
    engines = [e for e in ('espeak', 'flite', 'festival') if voices.get(e)]
    weights = [ENGINE_SHARE[e] for e in engines]
    items = plan_items(args)
    plan = []
    for k, (word, label, count) in enumerate(items):
        for n in range(count):
            # round-robin the first clips over engines so every engine speaks every word
            engine = (engines[(n + k) % len(engines)] if n < len(engines)
                      else rng.choices(engines, weights)[0])
            spec = make_spec(rng, word, label, engine, n, voices, variants, lengths)
            spec['out'] = os.path.join(args.out, label, spec['name'] + '.wav')
            plan.append(spec)
    return plan


# ---------------------------------------------------------------- main

def scan(out_dir, labels):
    """Re-reads every clip; removes empty or near-silent ones. Returns stats."""
    stats, removed = {}, []
    for label in labels:
        d = os.path.join(out_dir, label)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if not fn.endswith('.wav'):
                continue
            path = os.path.join(d, fn)
            try:
                x = read_wav(path)
            except (ValueError, OSError, EOFError, wave.Error):
                x = np.zeros(0, np.float32)
            r = rms(x)
            if len(x) < MIN_LEN_S * SR or r < MIN_RMS:
                os.unlink(path)
                removed.append(fn)
                continue
            engine = fn[:-4].split('_')[-2]
            s = stats.setdefault(label, {}).setdefault(engine, [0, 0.0, 0.0])
            s[0] += 1
            s[1] += len(x) / SR
            s[2] += r
    return stats, removed


def main():
    ap = argparse.ArgumentParser(description='Synthetic keyword speech in Speech Commands layout.')
    ap.add_argument('--out', required=True, help='output folder (outside the work tree)')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--per-keyword', type=int, default=1000)
    ap.add_argument('--per-unknown-word', type=int, default=60)
    ap.add_argument('--tiny', action='store_true', help='~5 clips per keyword, ~20 unknown (CI)')
    ap.add_argument('--engines', default='espeak,flite,festival')
    ap.add_argument('--keywords', default=','.join(KEYWORDS),
                    help='comma-separated keywords to speak, each a word or a short phrase '
                         '(folder and label: spaces become "-", e.g. "lights on" -> lights-on); '
                         'default: the ten Speech Commands keywords; the other words are _unknown_')
    ap.add_argument('--near', default='',
                    help='comma-separated extra _unknown_ words or phrases: near-misses of your '
                         'keywords (e.g. "commuter,compute" for computer), spoken like the others')
    args = ap.parse_args()
    near = parse_keywords(args.near) if args.near.strip() else []
    if near is None:
        ap.error(f'--near {args.near!r}: give words or phrases of letters, apostrophes and spaces, '
                 'separated by commas')
    args.near = near
    kws = parse_keywords(args.keywords)
    if kws is None:
        ap.error(f'--keywords {args.keywords!r}: give distinct words or phrases of letters, '
                 'apostrophes and spaces, separated by commas')
    args.keywords = kws
    engines = [e.strip() for e in args.engines.split(',') if e.strip()]
    bad = [e for e in engines if e not in ENGINE_SHARE]
    if bad or not engines:
        ap.error(f'unknown engine(s) {bad}; choose from espeak, flite, festival')
    for tool in ['sox'] + [{'espeak': 'espeak-ng'}.get(e, e) for e in engines]:
        if shutil.which(tool) is None:
            sys.exit(f'synth: {tool} is not installed (apt-get install sox espeak-ng flite festival '
                     'festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)')

    t0 = time.time()
    out = os.path.abspath(args.out)
    args.out = out
    labels = [slug(w) for w in args.keywords] + ['_unknown_']
    tmpdir = os.path.join(out, '.work', 'tmp')
    dropdir = os.path.join(out, '.work', 'dropped')
    for d in [tmpdir, dropdir] + [os.path.join(out, l) for l in labels]:
        os.makedirs(d, exist_ok=True)

    voices, probe = probe_voices(engines, tmpdir)
    variants = espeak_variants()
    print(f'[synth] voices: espeak {len(voices["espeak"])} accents x {len(variants)} variants, '
          f'flite {voices["flite"]}, festival {voices["festival"]}', flush=True)
    if not any(voices.values()):
        sys.exit('synth: no TTS voice produced audio')
    # Length of every word per flite/festival voice at stretch 1.0 (cached).
    lengths = {}
    tc = time.time()
    # The random draws do not depend on the lengths, so a plan made without
    # them names exactly the (voice, word) pairs that need measuring.
    wanted = {'flite': {}, 'festival': {}}
    for s in make_plan(args, voices, variants, {}):
        if s['engine'] in wanted:
            wanted[s['engine']].setdefault(s['params']['voice'], set()).add(s['word'])
    if voices['festival']:
        lengths.update(festival_calibrate(wanted['festival'], tmpdir,
                                          os.path.join(out, '.work', 'festival_lengths.json')))
    if voices['flite']:
        lengths.update(flite_calibrate(wanted['flite'], tmpdir,
                                       os.path.join(out, '.work', 'flite_lengths.json'), args.jobs))
    print(f'[synth] length calibration {time.time() - tc:.1f} s', flush=True)
    plan = make_plan(args, voices, variants, lengths)
    todo = [s for s in plan if not os.path.exists(s['out'])
            and not os.path.exists(os.path.join(dropdir, s['name']))]
    print(f'[synth] plan {len(plan)} clips, {len(plan) - len(todo)} cached, {len(todo)} to make, '
          f'jobs {args.jobs}', flush=True)

    # Festival clips go in batches per voice; batches first so they do not form the tail.
    tasks = []
    fest = {}
    for s in todo:
        if s['engine'] == 'festival':
            fest.setdefault(s['params']['voice'], []).append(s)
    for v, specs in fest.items():
        for i in range(0, len(specs), FESTIVAL_CHUNK):
            tasks.append(('festival', (v, specs[i:i + FESTIVAL_CHUNK]), tmpdir))
    tasks += [('clip', s, tmpdir) for s in todo if s['engine'] != 'festival']

    done = 0
    counts = {'ok': 0, 'dropped': 0, 'failed': 0}
    reasons = {}
    failures = []
    sped_up = 0
    t1 = time.time()
    last = t1
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        for res in pool.imap_unordered(run_task, tasks, chunksize=4):
            for spec, st, why in res:
                done += 1
                counts[st] += 1
                if st == 'dropped':
                    reasons[why] = reasons.get(why, 0) + 1
                    open(os.path.join(dropdir, spec['name']), 'w').close()
                elif st == 'failed':
                    failures.append(f'{spec["name"]}: {why}')
                elif why:
                    sped_up += 1
            now = time.time()
            if now - last >= 10 or done == len(todo):
                last = now
                print(f'[synth] {done}/{len(todo)} clips, {done / max(now - t1, 1e-6):.0f} clips/s '
                      f'(ok {counts["ok"]}, dropped {counts["dropped"]}, failed {counts["failed"]})',
                      flush=True)
    gen_s = time.time() - t1

    stats, removed = scan(out, labels)
    per_label = {l: sum(v[0] for v in stats.get(l, {}).values()) for l in labels}
    per_engine = {}
    table = {}
    for l, es in stats.items():
        for e, (c, dsum, rsum) in es.items():
            pe = per_engine.setdefault(e, [0, 0.0, 0.0])
            pe[0] += c
            pe[1] += dsum
            pe[2] += rsum
            table.setdefault(l, {})[e] = {'count': c, 'mean_len_s': round(dsum / c, 3),
                                          'mean_rms': round(rsum / c, 4)}
    total = sum(per_label.values())
    manifest = {
        'command': ' '.join([sys.executable] + sys.argv),
        'seed': args.seed, 'tiny': args.tiny, 'jobs': args.jobs, 'keywords': args.keywords,
        'per_keyword': args.per_keyword, 'per_unknown_word': args.per_unknown_word,
        'sample_rate': SR, 'max_len_s': MAX_LEN_S, 'min_rms': MIN_RMS,
        'total': total, 'planned': len(plan),
        'per_label': per_label,
        'per_engine': {e: {'count': v[0], 'mean_len_s': round(v[1] / v[0], 3),
                           'mean_rms': round(v[2] / v[0], 4)} for e, v in per_engine.items()},
        'per_label_engine': table,
        'this_run': {'made': counts['ok'], 'dropped': counts['dropped'], 'failed': counts['failed'],
                     'drop_reasons': reasons, 'sped_up_with_tempo': sped_up, 'failures': failures[:50],
                     'removed_by_final_check': len(removed)},
        'dropped_total': len(os.listdir(dropdir)),
        'unknown_words': [w for w, label, _ in plan_items(args) if label == '_unknown_'],
        'voices': voices, 'espeak_variants': variants, 'probe': probe,
        'generation_s': round(gen_s, 1), 'total_s': round(time.time() - t0, 1),
    }
    with open(os.path.join(out, 'manifest.json.part'), 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(os.path.join(out, 'manifest.json.part'), os.path.join(out, 'manifest.json'))
    print(f'[synth] done: {total} clips on disk ({counts["ok"]} made now, {sped_up} of them sped up, '
          f'{counts["dropped"]} dropped {reasons}, {counts["failed"]} failed, {len(removed)} removed by '
          f'the final check as empty, near-silent or too short) in '
          f'{time.time() - t0:.0f} s', flush=True)
    for l in labels:
        print(f'[synth]   {l:10s} {per_label[l]:6d}  ' +
              '  '.join(f'{e} {v["count"]}' for e, v in sorted(table.get(l, {}).items())), flush=True)
    for e, v in sorted(manifest['per_engine'].items()):
        print(f'[synth]   engine {e:9s} {v["count"]:6d} clips, mean {v["mean_len_s"]:.3f} s, '
              f'mean RMS {v["mean_rms"]:.4f}', flush=True)
    if failures:
        print(f'[synth] {len(failures)} failures, first: {failures[0]}', flush=True)
    return 0 if total > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
