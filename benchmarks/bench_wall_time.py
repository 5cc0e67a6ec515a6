"""Wall time of `fednot bench` on this machine, and where it goes.

Runs a bench from a cold model cache (pre-training and Retrain included) and prints the total
wall time, then splits it with the run's own logs: pre-training and Retrain rounds, each
method's step and recovery rounds (training and the validation pass each round runs), and the
rest (trajectory evaluation after every round, final evaluations with the MIA's noise floor,
writing results). With ``--jobs J`` the parts are shares of J × the wall time, the worker time
there was. Run it alone: a second heavy job doubles every figure.

    python benchmarks/bench_wall_time.py                      # the default: mnist5k-cnn, 5 seeds
    python benchmarks/bench_wall_time.py --jobs 2             # two cells at once, 1 thread each
    python benchmarks/bench_wall_time.py --preset fmnist-cnn-tuned --seeds 0,1,2,3,4
    python benchmarks/bench_wall_time.py --scenario class --methods retrain,ft,pgd,not,not_wb \
        --seeds 0,1,2 --out runs/bench-class

The run directory is kept; running the same command again resumes it (then the wall time only
covers what was left).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch

from fednot.cli.app import main as fednot


def breakdown(run_dir: Path, cache_dir: Path) -> dict[str, float]:
    """Seconds of training per phase, from the run's logs and the model cache's logs."""
    data = json.loads((run_dir / "results.json").read_text())
    seconds: dict[str, float] = defaultdict(float)
    for record in data["records"]:
        if record["method"] in ("original",):
            continue
        key = record["method"]
        if record["method"] == "retrain":
            log = data["logs"].get(f"retrain/seed{record['seed']}", {})
            seconds["retrain (training)"] += sum(r["seconds"] for r in log.get("rounds", []))
            continue
        seconds[f"{key} (step + recovery training)"] += record["seconds"]
    for path in cache_dir.glob("pretrain-*.pt"):  # this bench's cold cache: its pre-trainings
        payload = torch.load(path, map_location="cpu", weights_only=False)
        rounds = payload.get("log", {}).get("rounds", [])
        seconds["pre-training"] += sum(r["seconds"] for r in rounds)
    return dict(seconds)


def run() -> None:
    """Parse arguments, run the bench cold, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-wall-time")
    parser.add_argument("--scenario", default=None)
    parser.add_argument("--methods", default=None)
    parser.add_argument("--seeds", default=None)
    parser.add_argument("--threads", default="2")
    parser.add_argument("--jobs", default="1")
    parser.add_argument("--preset", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    cache = out.with_name(out.name + "-cache")
    argv = [
        "bench",
        "--out",
        str(out),
        "--threads",
        args.threads,
        "--jobs",
        args.jobs,
        "-q",
        "--set",
        f"cache_dir={cache}",
    ]
    for flag in ("preset", "scenario", "methods", "seeds"):
        if getattr(args, flag):
            argv += [f"--{flag}", getattr(args, flag)]
    start = time.perf_counter()
    code = fednot(argv)
    wall = time.perf_counter() - start
    parts = breakdown(out, cache)
    print(
        f"\nfednot {' '.join(argv)}\nexit code {code}; wall time {wall:.0f} s ({wall / 60:.1f} min)"
    )
    capacity = wall * int(args.jobs)  # the worker time there was
    counted = 0.0
    for name, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        counted += value
        print(f"  {name:45s} {value:7.0f} s  {100 * value / capacity:5.1f} %")
    rest = capacity - counted
    label = "evaluation (trajectories, final, MIA), I/O, idle"
    print(f"  {label:45s} {rest:7.0f} s  {100 * rest / capacity:5.1f} %")


if __name__ == "__main__":
    run()
