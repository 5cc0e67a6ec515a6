"""Round time under thread settings, alone and with a second run beside it.

Why fednot shortens OpenMP's spin-wait by default (docs/reliability.md, "Threads"): torch's CPU
kernels run in OpenMP parallel regions whose worker threads, by default, spin for a long while
at the end of each region waiting for the next. When a machine runs more threads than it has
cores (two runs at once, or another busy process), a spinning thread holds a core that the
thread it waits for needs, and every small parallel region pays a scheduler time slice. Many
clients mean many small batches, hence many regions.

Each measurement is a fresh process (the wait policy is read when torch loads OpenMP) that builds
the embedded MNIST-5k federation with ``--clients`` clients and times ``--rounds`` FedAvg rounds
of the paper's CNN; "concurrent" starts two such processes at once. Prints the median round time
per setting. Not a unit test: run it on an otherwise idle machine.

    .venv/bin/python benchmarks/thread_policy.py [--clients 10,200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, statistics, sys, time, torch
from fednot.configio import load_config
from fednot.benchmark.experiment import Experiment
clients, rounds, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
config = load_config(None, [f"data.num_clients={clients}", "cache_dir="])
exp = Experiment(config, 0)
fedavg = exp._fedavg(exp.federation, "pretrain", "bench")
state, times = dict(exp.initial_state), []
for r in range(1, rounds + 1):
    start = time.perf_counter()
    state, _ = fedavg.round(state, r)
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""

SETTINGS = {  # name: (threads, extra environment)
    "1 thread": (1, {"GOMP_SPINCOUNT": "1000"}),
    "2 threads, spin 300k (libgomp's default)": (2, {"GOMP_SPINCOUNT": "300000"}),
    "2 threads, passive": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "2 threads, spin 10k": (2, {"GOMP_SPINCOUNT": "10000"}),
    "2 threads, spin 1k (fednot's default)": (2, {"GOMP_SPINCOUNT": "1000"}),
}


def measure(clients: int, rounds: int, threads: int, env: dict[str, str], copies: int) -> float:
    """The slowest copy's median round time (seconds) with ``copies`` processes at once."""
    environ = {**os.environ, **env}
    args = [sys.executable, "-c", WORKER, str(clients), str(rounds), str(threads)]
    procs = [
        subprocess.Popen(args, env=environ, stdout=subprocess.PIPE, text=True)
        for _ in range(copies)
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {outs}")
    return max(float(json.loads(out.strip().splitlines()[-1])) for out in outs)


def main() -> None:
    """Print the table of round times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,200", help="comma-separated client counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", help="comma-separated setting numbers (default: all)")
    args = parser.parse_args()
    chosen = list(SETTINGS.items())
    if args.settings:
        chosen = [chosen[int(i)] for i in args.settings.split(",")]
    print(f"median round time (s), {os.cpu_count()} CPUs, MNIST-5k CNN, {args.rounds} rounds")
    print(f"{'setting':42s} {'clients':>7s} {'alone':>7s} {'2 runs':>7s}")
    for clients in (int(c) for c in args.clients.split(",")):
        for name, (threads, env) in chosen:
            alone = measure(clients, args.rounds, threads, env, 1)
            both = measure(clients, args.rounds, threads, env, 2)
            print(f"{name:42s} {clients:7d} {alone:7.2f} {both:7.2f}", flush=True)


if __name__ == "__main__":
    main()
