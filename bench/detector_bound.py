"""detector_bound.py - the best live-mode result a model's lone-clip scores allow.

Usage:

  build/s4kws classify --model M.safetensors --format csv VAL > m.csv
  /usr/bin/python3 bench/detector_bound.py m.csv [--keywords 123] [--others 89]

Live mode (`s4kws listen`) turns posteriors into detections with a threshold. This asks what a
detector could do at best if live mode were as good as classifying each word as a lone clip:
perfect timing, no loss from the audio heard before the word, no false detection on noise. For
each threshold t it counts, on a Speech Commands-layout folder scored by the C binary:

  recall   keyword clips whose top label is right with score >= t
  false    clips whose top label is a keyword other than their own with score >= t
           (keyword confusions and non-keyword words taken for a keyword)

and scales the false counts to a stream with the given numbers of keywords and non-keyword words
(default: the 123 and 89 of the 10-minute stream of tests/daemon/e2e_accuracy without --seed).
If no threshold reaches a goal here, no post-processing of that model can reach it live.
Exit status: 0, or 2 when the CSV cannot be read or holds no keyword clips.
"""
import argparse
import csv
import sys


def main():
    ap = argparse.ArgumentParser(description="best live-mode recall/false detections from lone-clip scores")
    ap.add_argument("csv", help="`s4kws classify --format csv` of a Speech Commands-layout folder")
    ap.add_argument("--keywords", type=float, default=123, help="keywords in the stream (123)")
    ap.add_argument("--others", type=float, default=89, help="non-keyword words in the stream (89)")
    a = ap.parse_args()
    kw, other = [], []
    try:
        with open(a.csv, newline="") as f:
            rows = list(csv.DictReader(f))
            labels = [c for c in (rows[0].keys() if rows else []) if c not in
                      ("file", "channel", "start", "end", "label", "score", "error")]
            keywords = {c for c in labels if not c.startswith("_")}
            for r in rows:
                if r.get("error"):
                    continue
                truth = r["file"].replace("\\", "/").split("/")[-2]
                if truth == "_silence_":
                    continue                              # the stream's gaps are noise, not these
                item = (truth, r["label"], float(r["score"]))
                (kw if truth in keywords else other).append(item)
    except (OSError, KeyError, ValueError, csv.Error, UnicodeDecodeError) as e:
        print(f"detector_bound: cannot read {a.csv} as a classify CSV: {type(e).__name__} {e}", file=sys.stderr)
        return 2
    if not kw:
        print(f"detector_bound: {a.csv} holds no keyword clips (folders named after its labels)", file=sys.stderr)
        return 2
    print(f"{len(kw)} keyword clips, {len(other)} non-keyword clips; false detections per stream of "
          f"{a.keywords:g} keywords and {a.others:g} other words")
    print(f"{'threshold':>9} {'recall':>7} {'false':>6} {'(confusions':>12} {'others)':>8}")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        rec = sum(1 for y, p, s in kw if p == y and s >= t) / len(kw)
        conf = a.keywords * sum(1 for y, p, s in kw if p != y and p in keywords and s >= t) / len(kw)
        oth = a.others * (sum(1 for y, p, s in other if p in keywords and s >= t) / len(other) if other else 0)
        print(f"{t:9.2f} {100 * rec:6.1f}% {conf + oth:6.1f} {conf:12.1f} {oth:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
