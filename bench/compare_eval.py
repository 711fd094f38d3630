"""compare_eval.py - is model B better than model A on the same labelled clips, or is it noise?

Usage:

  build/s4kws classify --model A.safetensors --format csv VAL > a.csv
  build/s4kws classify --model B.safetensors --format csv VAL > b.csv
  /usr/bin/python3 bench/compare_eval.py a.csv b.csv

Both CSVs come from the C binary on a Speech Commands-layout folder (the true label of a clip is
the name of its folder). Prints each model's accuracy, the clips on which exactly one of them is
right (the only ones that tell the models apart), and the exact two-sided McNemar p-value: the
probability of a split at least that uneven if both models were equally good. With 912 val clips
a difference of a few clips is usually noise; say so before shipping a model for it.
Exit status: 0, or 2 when the files do not cover the same clips.
"""
import csv
import math
import sys


def load(path):
    """{file: correct?} from one `classify --format csv` output; failed files are skipped."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("error"):
                continue
            truth = row["file"].replace("\\", "/").split("/")[-2]
            out[row["file"]] = row["label"] == truth
    return out


def mcnemar_p(b, c):
    """Exact two-sided McNemar p for b clips only A gets right and c only B gets right."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        a, b = load(sys.argv[1]), load(sys.argv[2])
    except (OSError, KeyError, csv.Error, UnicodeDecodeError) as e:
        # a missing file, or not the CSV of `classify --format csv` (no 'file'/'label' column)
        print(f"compare_eval: cannot read the two classify CSVs: {type(e).__name__} {e}", file=sys.stderr)
        return 2
    if not a or set(a) != set(b):
        print(f"compare_eval: {sys.argv[1]} and {sys.argv[2]} do not cover the same clips "
              f"({len(a)} and {len(b)} files, {len(set(a) ^ set(b))} in only one)", file=sys.stderr)
        return 2
    n = len(a)
    ra, rb = sum(a.values()), sum(b.values())
    only_a = sum(1 for f in a if a[f] and not b[f])
    only_b = sum(1 for f in a if b[f] and not a[f])
    print(f"A {sys.argv[1]}: {ra}/{n} ({100 * ra / n:.2f} %)")
    print(f"B {sys.argv[2]}: {rb}/{n} ({100 * rb / n:.2f} %)")
    print(f"only A right: {only_a}, only B right: {only_b}, net B - A: {only_b - only_a:+d} clips")
    print(f"exact McNemar p = {mcnemar_p(only_a, only_b):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
