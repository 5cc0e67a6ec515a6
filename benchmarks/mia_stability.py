"""How many repeats the loss MIA needs: the across-seed spread of one evaluation, and its cost.

The default run (MNIST-5k, the paper's CNN, 10 IID clients, client 0 forgotten): members are the
forget set's losses under the pre-trained model, non-members the test set's. A second model, the
same with its first layer negated, has a very different loss distribution. For each number of
repeats, with label matching on and off, the attack runs with 30 seeds; the std of its score
across seeds is the instability of one evaluation. The default is the smallest repeats in
{10, 20, 50, 100} whose across-seed std is at most 0.25 points on both models, label-matched.
Then the permutation noise floor at that default, and its time. Not a unit test: the times
depend on the machine and its load. Run from the repository root (the pre-trained model is
cached under .fednot-cache/; the first run trains for a minute or two):

    .venv/bin/python benchmarks/mia_stability.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from fednot import Experiment, RunConfig
from fednot.federation.local import predict
from fednot.metrics.mia import DEFAULT_REPEATS, loss_mia, mia_noise_floor
from fednot.unlearning.negation import negate

REPEATS = (1, 5, 10, 20, 50, 100)
CANDIDATES = (10, 20, 50, 100)
SEEDS = 30
TARGET_STD = 0.25
PERMUTATIONS = 200


def attack_inputs() -> dict[str, dict[str, np.ndarray]]:
    """Member and non-member losses and labels of the original and the negated model."""
    exp = Experiment(RunConfig(), seed=0)
    trained = exp.pretrain()
    split = exp.split(exp.scenario.request)
    states = {
        "original": trained.state,
        "negated block1": negate(trained.state, ["block1.conv.weight"]),
    }
    inputs = {}
    for name, state in states.items():
        exp.model.load_state_dict(state)
        forget, _ = predict(exp.model, split.forget, exp.federation.preprocess, batch_size=512)
        test, _ = predict(exp.model, exp.federation.test, exp.federation.preprocess, batch_size=512)
        inputs[name] = {
            "member_losses": forget.numpy(),
            "nonmember_losses": test.numpy(),
            "member_labels": split.forget.labels.numpy(),
            "nonmember_labels": exp.federation.test.labels.numpy(),
        }
    return inputs


def sides(data: dict[str, np.ndarray], matched: bool) -> dict[str, np.ndarray]:
    """The attack's keyword arguments, with the labels only when label-matched."""
    keys = ["member_losses", "nonmember_losses"]
    keys += ["member_labels", "nonmember_labels"] if matched else []
    return {key: data[key] for key in keys}


def main() -> None:
    """Measure and print the table."""
    torch.set_num_threads(1)
    inputs = attack_inputs()
    spread: dict[tuple[str, bool, int], float] = {}
    print(f"MIA over {SEEDS} seeds (mean, std across seeds, ms per call), folds=5")
    print(f"{'model':<16}{'matched':<9}{'repeats':>8}{'n':>6}{'mean':>9}{'std':>8}{'ms':>9}")
    for name, data in inputs.items():
        for matched in (True, False):
            for repeats in REPEATS:
                scores, seconds = [], 0.0
                for seed in range(SEEDS):
                    start = time.perf_counter()
                    result = loss_mia(**sides(data, matched), seed=seed, repeats=repeats)
                    seconds += time.perf_counter() - start
                    scores.append(result.mean)
                std = float(np.std(scores, ddof=1))
                spread[name, matched, repeats] = std
                print(
                    f"{name:<16}{'on' if matched else 'off':<9}{repeats:>8}{result.n:>6}"
                    f"{np.mean(scores):>9.2f}{std:>8.3f}{seconds / SEEDS * 1e3:>9.1f}"
                )
    chosen = next(
        (r for r in CANDIDATES if all(spread[m, True, r] <= TARGET_STD for m in inputs)),
        CANDIDATES[-1],
    )
    print(
        f"\nchosen default: repeats={chosen} (smallest in {CANDIDATES} with std <= {TARGET_STD} "
        f"on both models, label-matched); mia.DEFAULT_REPEATS = {DEFAULT_REPEATS}"
    )
    print(f"\nnoise floor at repeats={chosen}, {PERMUTATIONS} permutations, seed 0")
    print(f"{'model':<16}{'matched':<9}{'mean':>9}{'std':>8}{'half_w':>8}{'MIA':>9}{'s':>8}")
    for name, data in inputs.items():
        for matched in (True, False):
            start = time.perf_counter()
            floor = mia_noise_floor(
                **sides(data, matched), seed=0, repeats=chosen, permutations=PERMUTATIONS
            )
            seconds = time.perf_counter() - start
            attack = loss_mia(**sides(data, matched), seed=0, repeats=chosen).mean
            print(
                f"{name:<16}{'on' if matched else 'off':<9}{floor.mean:>9.2f}{floor.std:>8.3f}"
                f"{floor.half_width:>8.3f}{attack:>9.2f}{seconds:>8.2f}"
            )


if __name__ == "__main__":
    main()
