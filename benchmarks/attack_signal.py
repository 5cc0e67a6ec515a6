"""How much of the original-vs-Retrain membership signal each attack sees, in units of its floor.

On the Fashion-MNIST preset ``fmnist-cnn`` (where the original model memorises its clients),
for each seed: pre-train the original (cached under .fednot-cache/), run Retrain on the
preset's request (client 0 forgotten), and evaluate both with ``Experiment.evaluate`` (full
sets, 200-permutation nulls). Prints, per model, the loss MIA and its floor, the confidence
attack's AUC and TPR at 1 % FPR and their floors; then, per statistic, the original-minus-Retrain
difference divided by that statistic's floor (the mean of the two models' floors), per seed and
averaged over seeds. A larger ratio means the attack tells the original from Retrain more
clearly relative to what a no-signal forget set of this size can score. Retrain's trajectory is
not recorded (``eval.curve_every=0``). Needs Debian's ``dataset-fashion-mnist`` (or
``--set data.root=FOLDER``). Not a unit test; about 10 minutes per seed on one thread:

    nohup .venv/bin/python benchmarks/attack_signal.py --threads 1 > /tmp/attack_signal.log 2>&1 &
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fednot import Experiment
from fednot.benchmark.evaluation import Metrics
from fednot.configio import load_config

STATISTICS = (  # (label, value field, floor field)
    ("loss MIA", "mia", "mia_floor"),
    ("conf AUC", "conf_auc", "conf_auc_floor"),
    ("conf TPR@1%FPR", "conf_tpr", "conf_tpr_floor"),
)


def measure(seed: int, threads: int, overrides: list[str]) -> dict[str, Metrics]:
    """The original's and Retrain's metrics on one seed."""
    config = load_config(
        None, [f"threads={threads}", "eval.curve_every=0", *overrides], preset="fmnist-cnn"
    )
    exp = Experiment(config, seed)
    trained = exp.pretrain()
    retrain = exp.unlearn(trained, exp.scenario.request, "retrain")
    return {"original": exp.evaluate(trained.state), "retrain": exp.evaluate(retrain.state)}


def ratios(metrics: dict[str, Metrics]) -> dict[str, float]:
    """Per statistic: (original − Retrain) / the mean of their floors."""
    out = {}
    for label, value, floor in STATISTICS:
        a, b = (metrics[m][value] for m in ("original", "retrain"))
        floors = [metrics[m][floor] for m in ("original", "retrain")]
        out[label] = (a - b) / float(np.mean(floors))
    return out


def main() -> None:
    """Measure the seeds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[int, dict[str, float]] = {}
    values: dict[str, list[float]] = {}
    for seed in seeds:
        start = time.perf_counter()
        metrics = measure(seed, args.threads, args.overrides)
        print(f"seed {seed} ({time.perf_counter() - start:.0f} s)")
        for model, m in metrics.items():
            cells = [f"{label} {m[v]:.2f} (floor {m[f]:.2f})" for label, v, f in STATISTICS]
            print(f"  {model:9s} forget acc {m.forget_acc:.2f}  " + "  ".join(cells))
            for label, v, f in STATISTICS:
                values.setdefault(f"{model} {label}", []).append(m[v])
                values.setdefault(f"{model} {label} floor", []).append(m[f])
        per_seed[seed] = ratios(metrics)
        in_floors = "  ".join(f"{k} {r:.2f}" for k, r in per_seed[seed].items())
        print(f"  original − Retrain, in floors: {in_floors}", flush=True)
    print(f"mean over seeds {seeds}")
    for key, vs in values.items():
        print(f"  {key:32s} {np.mean(vs):7.2f}")
    for label, _, _ in STATISTICS:
        rs = [per_seed[s][label] for s in seeds]
        print(
            f"  original − Retrain, {label}, in floors: {np.mean(rs):.2f} "
            f"(per seed {', '.join(f'{r:.2f}' for r in rs)})"
        )


if __name__ == "__main__":
    main()
