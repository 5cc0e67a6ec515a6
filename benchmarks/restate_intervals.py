"""Restate a published results.md's paired comparisons with today's multiplicity control.

For results whose per-seed gaps were not kept (the Fashion-MNIST bench of 2026-12-01 shipped
its results.md only), each paired t-interval still determines its t-test: with n seeds, the
interval mean ± q·s/√n (q the 97.5 % t quantile, n − 1 degrees of freedom) gives
t = mean / (half-width / q) and the two-sided p. This script reads the "Paired differences"
table of a results.md, rebuilds every p, applies Holm's correction within the primary families
(every method against NoT, and against FT, at the end of the budget: docs/protocol.md; FT
against NoT is tested once, in NoT's family), and prints which statements survive. The exact
sign-flip test needs the per-seed values; its p cannot go below 2^(1−n) whatever they are
(0.25 with 3 seeds), which the output says.

Only the end-of-budget readings are restated: the cost-point readings of such older results
were read on an evaluation grid (a method whose step sends something could be read up to
``curve_every − 1`` rounds early) against Retrain's full-set metrics while the points used
subsets, so they carry no statement.

    python benchmarks/restate_intervals.py docs/results/fmnist-cnn-tuned.md --seeds 3
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from scipy import stats

from fednot.benchmark.stats import holm, smallest_sign_flip_p

CELL = re.compile(r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]")


def p_from_interval(mean: float, low: float, high: float, n: int) -> float:
    """The two-sided paired t-test p-value behind a 95 % t-interval over ``n`` seeds."""
    half = (high - low) / 2
    if half <= 0:
        return 0.0 if mean else 1.0
    se = half / float(stats.t.ppf(0.975, n - 1))
    return float(2 * stats.t.sf(abs(mean / se), n - 1))


def paired_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first table after "## Paired differences"."""
    part = text.split("## Paired differences", 1)[1]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return header, rows


def main() -> None:
    """Print the restated end-of-budget statements as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_md", type=Path)
    parser.add_argument("--seeds", type=int, required=True, help="seeds behind each interval")
    args = parser.parse_args()
    header, rows = paired_rows(args.results_md.read_text())
    n = args.seeds
    print(f"Restated from {args.results_md} ({n} seeds; p rebuilt from each 95 % t-interval).\n")
    print("| Family | Method | difference (method − reference) [95 % CI] | p | Holm p | ranked |")
    print("|---|---|---|---|---|---|")
    tested: set[frozenset[str]] = set()
    for column, name in enumerate(header):
        if not name.endswith(": end"):
            continue
        reference = name.split(":")[0].lstrip("− ").strip()
        family = []
        for row in rows:
            match = CELL.match(row[column])
            if match and frozenset((row[0], reference)) not in tested:  # each pair once
                mean, low, high = (float(g) for g in match.groups())
                family.append((row[0], mean, low, high, p_from_interval(mean, low, high, n)))
        tested |= {frozenset((method, reference)) for method, *_ in family}
        adjusted = holm([p for *_, p in family])
        for (method, mean, low, high, p), p_holm in zip(family, adjusted, strict=True):
            ranked = "yes" if p_holm < 0.05 else "no"
            print(
                f"| {reference}, end | {method} | {mean:+.2f} [{low:+.2f}, {high:+.2f}] | "
                f"{p:.4f} | {p_holm:.4f} | {ranked} |"
            )
    floor = smallest_sign_flip_p(n)
    print(f"\nThe exact sign-flip test cannot go below p = {floor:.4g} with {n} seeds.")
    if math.isfinite(floor) and floor > 0.05:
        print("No ranking from these seeds survives a test that does not assume normality.")


if __name__ == "__main__":
    main()
