"""Rows of quality.py trained from several seeds: each method's mean and range per clip.

    python benchmarks/quality_seeds.py seed0.json seed1.json ... [--baseline composite]

Reads the `--json` files of `benchmarks/quality.py` runs (rows `<row>` trained from
TrainConfig's seed 0, rows `<row> seed N` from `--seed N`) and prints, per target and clip, each
method's mean over its seeds with the range in brackets. A second table compares each method with
the baseline clip by clip: the difference of the means, and `yes` where both have two seeds or
more and the two ranges do not overlap: every seed of the method on one side of every seed of the baseline. With two or
three seeds that is a weak test, but one that a single run per row cannot give. A row's label may carry a note in brackets (`composite (**default**)`); it is ignored.
Rows of one method trained for different step counts are different methods, named
`<method> <steps> steps` (`composite 3200 steps`: the equal-minutes comparisons of
docs/quality.md), never seeds of one.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

METRICS = ("lpips", "lpips_worst_decile", "fid", "tcm", "warp_error", "akd_body", "mkr_body")
LOWER_IS_BETTER = {"lpips", "lpips_worst_decile", "fid", "warp_error", "akd_body", "mkr_body"}
CLIPS = ("self", "source0", "source1")


def method_and_seed(label: str) -> tuple[str, int]:
    """'sequence seed 1' -> ('sequence', 1); 'composite (**default**)' -> ('composite', 0).

    quality.py names a row's variants after the seed ('ema seed 1 trained weights',
    'composite seed 1 gain 1.25'): the seed is taken out of the middle too.
    """
    label = re.sub(r"\s*\(.*\)$", "", label)
    match = re.fullmatch(r"(.+?) seed (\d+)(.*)", label)
    return (match[1] + match[3], int(match[2])) if match else (label, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="quality.py --json files")
    parser.add_argument("--baseline", default="composite", help="the method compared against")
    args = parser.parse_args()

    entries = [entry for path in args.results for entry in json.loads(path.read_text())]
    budgets: dict[str, set[str]] = defaultdict(set)  # method -> the step counts it was run at
    for entry in entries:
        budgets[method_and_seed(str(entry["row"]))[0]].add(str(entry.get("steps")))
    # (target, clip, method) -> seed -> scores; a later file's seed replaces an earlier one's
    runs: dict[tuple[int, str, str], dict[int, dict[str, float]]] = defaultdict(dict)
    for entry in entries:
        method, seed = method_and_seed(str(entry["row"]))
        if len(budgets[method]) > 1:
            method = f"{method} {entry.get('steps')} steps"
        runs[entry["target"], entry["clip"], method][seed] = entry
    if len(budgets.get(args.baseline, ())) > 1:
        choices = " or ".join(f"'{args.baseline} {steps} steps'"
                              for steps in sorted(budgets[args.baseline]))
        parser.error(f"{args.baseline} was run for more than one step count: pass "
                     f"--baseline {choices}")
    keys = sorted(runs, key=lambda k: (k[0], CLIPS.index(k[1]) if k[1] in CLIPS else 9, k[2]))

    print("| target | clip | method | seeds | " + " | ".join(METRICS) + " |")
    print("|" + "---|" * (4 + len(METRICS)))
    for key in keys:
        seeds = runs[key]
        cells = []
        for name in METRICS:
            values = [s[name] for s in seeds.values() if isinstance(s.get(name), float)]
            cells.append("-" if not values else f"{statistics.mean(values):.3f}" + (
                f" [{min(values):.3f}, {max(values):.3f}]" if len(values) > 1 else ""))
        print(f"| target{key[0]} | {key[1]} | {key[2]} | "
              f"{','.join(map(str, sorted(seeds)))} | " + " | ".join(cells) + " |")

    print(f"\nAgainst {args.baseline}: difference of the means (negative is lower); 'yes' where "
          "the seeds' ranges do not overlap (two seeds or more on both sides); '+' marks the better "
          "side\n")
    print("| target | clip | method | " + " | ".join(METRICS) + " |")
    print("|" + "---|" * (3 + len(METRICS)))
    for target, clip, method in keys:
        base = runs.get((target, clip, args.baseline))
        if method == args.baseline or not base:
            continue
        cells = []
        for name in METRICS:
            mine = [s[name] for s in runs[target, clip, method].values()
                    if isinstance(s.get(name), float)]
            theirs = [s[name] for s in base.values() if isinstance(s.get(name), float)]
            if not mine or not theirs:
                cells.append("-")
                continue
            delta = statistics.mean(mine) - statistics.mean(theirs)
            better = (delta < 0) == (name in LOWER_IS_BETTER)
            apart = min(len(mine), len(theirs)) > 1 and (max(mine) < min(theirs)
                                                          or min(mine) > max(theirs))
            cells.append(f"{delta:+.3f}{' +' if better and delta else ''}"
                         f"{' yes' if apart else ''}")
        print(f"| target{target} | {clip} | {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
