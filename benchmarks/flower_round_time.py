"""Wall time of one FedAvg round: fednot's engine, Flower simulation, a local Flower deployment.

Same workload everywhere: the embedded MNIST-5k, the paper's CNN, 3 IID clients, 1 local epoch,
batch 32, one torch thread per process; ``--rounds`` pre-training rounds (default 3). Prints the
first round, the median of the later rounds, and the bytes per round: fednot's count (2 x state
bytes per participant) and what flwr's size mods counted on the messages. Not a unit test: the
numbers depend on the machine and its load (host steal time is printed).

    .venv/bin/python benchmarks/flower_round_time.py [--rounds 3] [--skip-deployment]
        [--skip-simulation] [--poll 0.05]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import DataConfig, RunConfig, TrainConfig, UnlearnConfig
from fednot.configio import to_toml
from fednot.federation.costs import state_bytes
from fednot.federation.fedavg import FedAvg
from fednot.federation.local import LocalRecipe


def _config(rounds: int) -> RunConfig:
    return RunConfig(
        data=DataConfig(num_clients=3),
        train=TrainConfig(rounds=rounds),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=1, methods=("not",)),
        threads=1,
        cache_dir="",
        save_models=False,
    )


def engine(config: RunConfig) -> dict[str, Any]:
    """Rounds of fednot's own FedAvg (`FedAvg.round`, validation included)."""
    exp = Experiment(config, 0)
    fedavg = FedAvg(
        exp.model,
        exp.federation,
        LocalRecipe.from_config(config.train),
        exp.streams,
        phase="pretrain",
        flops=exp.flops,
    )
    state, seconds = exp.initial_state, []
    for round_ in range(1, config.train.rounds + 1):
        start = time.perf_counter()
        state, record = fedavg.round(state, round_)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "fednot_bytes": record.comm_bytes, "flower_bytes": None}


def simulation(config: RunConfig, workdir: Path) -> dict[str, Any]:
    """Rounds under ``run_simulation`` (Ray), timed by the ServerApp."""
    from fednot.integrations.flower.local.appdir import quiet_environment
    from fednot.integrations.flower.testing.checks import simulate

    os_env(quiet_environment(workdir / "flwr-home"))
    out = workdir / "sim"
    defaults = {
        "fednot-config": to_toml(config),
        "stage": "pretrain",
        "out": str(out),
        "cache-dir": str(workdir / "cache"),
    }
    start = time.perf_counter()
    simulate(defaults, config.data.num_clients)
    return {**_from_result(out), "wall": time.perf_counter() - start}


def deployment(config: RunConfig, workdir: Path, poll: float) -> dict[str, Any]:
    """Rounds on a SuperLink and 3 SuperNodes on 127.0.0.1, timed by the ServerApp."""
    from fednot.integrations.flower.local.appdir import write_app
    from fednot.integrations.flower.local.deploy import LocalDeployment

    out = workdir / "deployment"
    settings = {
        "fednot-config": to_toml(config),
        "stage": "pretrain",
        "out": str(out),
        "cache-dir": str(workdir / "cache"),
        "poll-interval": poll,
    }
    app = write_app(workdir / "app", settings)
    nodes = [{"partition-id": k, "num-partitions": 3} for k in range(3)]
    start = time.perf_counter()
    with LocalDeployment(nodes, workdir / "federation") as federation:  # type: ignore[arg-type]
        up = time.perf_counter() - start
        run = federation.run(app, {}, timeout=1200)
    if run.returncode != 0:
        raise SystemExit(f"flwr run failed:\n{run.output[-3000:]}")
    return {**_from_result(out), "wall": run.seconds, "up": up}


def _from_result(out: Path) -> dict[str, Any]:
    result = json.loads((out / "result.json").read_text())
    rounds = result["pretrain"]["rounds"]
    last = rounds[-1]
    flower = last["extra"]["flower_bytes_down"] + last["extra"]["flower_bytes_up"]
    return {
        "seconds": [r["seconds"] for r in rounds],
        "fednot_bytes": last["comm_bytes"],
        "flower_bytes": int(flower),
    }


def os_env(values: dict[str, str]) -> None:
    """Set environment variables in this process (Ray and Flower read them at start)."""
    import os

    os.environ.update(values)


def steal_percent() -> float:
    """Host steal time since boot, in % of all CPU time (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return 100.0 * fields[7] / max(sum(fields), 1) if len(fields) > 7 else float("nan")


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-deployment", action="store_true")
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument(
        "--poll",
        type=float,
        default=0.05,
        help="seconds between the server's pulls for replies (Flower's own grids: 3)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = _config(args.rounds)
    workdir = Path(tempfile.mkdtemp(prefix="fednot-flower-bench-"))
    runs = {"fednot engine": engine(config)}
    if not args.skip_simulation:
        runs["Flower simulation"] = simulation(config, workdir)
    if not args.skip_deployment:
        runs[f"Flower deployment (poll {args.poll:g} s)"] = deployment(config, workdir, args.poll)
    exp = Experiment(config, 0)
    print(
        f"MNIST-5k, CNN ({state_bytes(exp.initial_state)} state bytes), 3 clients, "
        f"{args.rounds} rounds; load {Path('/proc/loadavg').read_text().split()[:3]}, "
        f"steal {steal_percent():.1f}%"
    )
    print(
        f"{'runtime':<20} {'round 1 s':>10} {'later rounds s':>15} {'fednot B/round':>15} "
        f"{'flwr mods B/round':>18}"
    )
    for name, run in runs.items():
        later = statistics.median(run["seconds"][1:]) if len(run["seconds"]) > 1 else float("nan")
        flower = "-" if run["flower_bytes"] is None else str(run["flower_bytes"])
        print(
            f"{name:<20} {run['seconds'][0]:>10.2f} {later:>15.2f} {run['fednot_bytes']:>15} "
            f"{flower:>18}"
        )
    print(json.dumps({k: {kk: v for kk, v in r.items()} for k, r in runs.items()}, default=str))


if __name__ == "__main__":
    main()
