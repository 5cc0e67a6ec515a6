"""Throughput of fednot's training and evaluation against the machine's peak and a plain loop.

For each workload it measures, in one process and interleaved (best of ``--repeats``):

- the matmul peak: GFLOP/s of a large fp32 matrix product at the same thread count;
- fednot's client training (`fednot.federation.local.local_train`: shuffling, batch gathering,
  preprocessing, the optimiser, cost metering) and its evaluation
  (`fednot.federation.local.forward`), in GFLOP/s by fednot's own FLOP meter;
- a minimal plain-PyTorch loop on the same model, layout, batch and optimiser, with the data
  already preprocessed and resident: the ceiling an engine can approach.

It prints each figure, the fraction of the matmul peak, and fednot / plain. Workloads: the
paper's CNN on MNIST-5k (a client's share, batch 32) and ResNet-18 on CIFAR-shaped synthetic
data (3×32×32, 10 classes). Run it alone: a second heavy job halves every figure.

    python benchmarks/throughput.py                      # 2 threads, both workloads, on the CPU
    python benchmarks/throughput.py --threads 1 --workloads cnn
    python benchmarks/throughput.py --device cuda        # on a GPU (ResNet-18 gets larger sets)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fednot.config import DataConfig
from fednot.data.federated import Federation, Preprocess, Samples
from fednot.data.registry import load_federation
from fednot.data.synthetic import tiny_federation
from fednot.environment import place_model, resolve_device
from fednot.federation.costs import FlopMeter
from fednot.federation.local import LocalRecipe, forward, local_train
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams


@dataclass(frozen=True)
class Workload:
    """A model and the data one client trains on and a server evaluates."""

    name: str
    model: nn.Module
    train: Samples
    test: Samples
    preprocess: Preprocess
    batch_size: int
    eval_batch_size: int


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an fp32 ``size``×``size`` matrix product (best of ``repeats``)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = min(_timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(work: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def workloads(names: list[str], device: torch.device, layout: str) -> list[Workload]:
    """The requested workloads, their models placed on ``device`` in ``layout``."""
    feds: dict[str, tuple[str, Federation]] = {}
    if "cnn" in names:
        feds["cnn"] = ("CNN, MNIST-5k client", load_federation(DataConfig(), SeedStreams(0))[0])
    if "resnet18" in names:
        n = 2048 if device.type == "cuda" else 256
        synthetic = tiny_federation(
            1, train_per_client=n, val_per_client=1, test_size=n, shape=(3, 32, 32), num_classes=10
        )
        feds["resnet18"] = ("ResNet-18, CIFAR-shaped client", synthetic)
    out = []
    for model_name, (title, fed) in feds.items():
        model = create_model(model_name, input_shape=fed.input_shape, num_classes=fed.num_classes)
        train = fed.clients[0].train
        out.append(
            Workload(
                f"{title} ({len(train)} samples), batch 32",
                place_model(model, device, layout),
                train,
                fed.test,
                fed.preprocess,
                32,
                128,
            )
        )
    return out


def fednot_train(w: Workload, device: torch.device, flops: FlopMeter) -> tuple[float, int]:
    """Seconds and FLOPs of one local epoch through the engine."""
    state = {k: v.clone() for k, v in w.model.state_dict().items()}
    recipe = LocalRecipe(batch_size=w.batch_size)
    result: list[int] = []

    def work() -> None:
        update = local_train(
            w.model,
            state,
            w.train,
            w.preprocess,
            recipe,
            torch.Generator().manual_seed(0),
            flops=flops,
            device=device,
        )
        result.append(update.flops)

    return _timed(work, device), result[-1]


def plain_train(
    w: Workload, device: torch.device, images: torch.Tensor, labels: torch.Tensor
) -> float:
    """Seconds of one epoch of a minimal loop on resident, preprocessed data."""
    model = w.model
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)).to(device)

    def work() -> None:
        for start in range(0, len(order), w.batch_size):
            rows = order[start : start + w.batch_size]
            loss = nn.functional.cross_entropy(model(images[rows]), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()

    return _timed(work, device)


def plain_eval(w: Workload, device: torch.device, images: torch.Tensor) -> float:
    """Seconds of a minimal evaluation pass over resident, preprocessed data."""
    model = w.model.eval()

    def work() -> None:
        with torch.no_grad():
            outs = [
                model(images[s : s + w.eval_batch_size])
                for s in range(0, len(images), w.eval_batch_size)
            ]
            torch.cat(outs).cpu()

    return _timed(work, device)


def resident(
    samples: Samples, preprocess: Preprocess, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples preprocessed (no augmentation) and moved to ``device`` once."""
    images, labels = samples.fetch(torch.arange(len(samples)))
    return preprocess(images).to(device), labels.to(device)


def measure(w: Workload, device: torch.device, peak: float, repeats: int) -> None:
    """Print the training and evaluation figures of ``w``."""
    flops = FlopMeter(w.model)
    train_x, train_y = resident(w.train, w.preprocess, device)
    test_x, _ = resident(w.test, w.preprocess, device)
    eval_flops = flops.forward((len(w.test), *w.test.source.shape))
    rows: dict[str, list[float]] = {
        k: [] for k in ("fednot train", "plain train", "fednot eval", "plain eval")
    }
    train_flops = 0
    for _ in range(repeats):  # interleaved, so drifts of the machine hit both alike
        seconds, train_flops = fednot_train(w, device, flops)
        rows["fednot train"].append(seconds)
        rows["plain train"].append(plain_train(w, device, train_x, train_y))
        rows["fednot eval"].append(
            _timed(
                lambda: forward(
                    w.model, w.test, w.preprocess, batch_size=w.eval_batch_size, device=device
                ),
                device,
            )
        )
        rows["plain eval"].append(plain_eval(w, device, test_x))
    best = {k: min(v) for k, v in rows.items()}
    print(
        f"\n{w.name}  (training: {train_flops / 1e9:.1f} GFLOP an epoch; evaluation: "
        f"{eval_flops / 1e9:.1f} GFLOP over {len(w.test)} samples)"
    )
    for what, work in (("train", train_flops), ("eval", eval_flops)):
        ours, plain = work / best[f"fednot {what}"] / 1e9, work / best[f"plain {what}"] / 1e9
        print(
            f"  {what:5s}  fednot {ours:7.1f} GFLOP/s ({100 * ours / peak:5.1f} % of peak)   "
            f"plain loop {plain:7.1f} GFLOP/s ({100 * plain / peak:5.1f} %)   "
            f"fednot / plain {ours / plain:.2f}×"
        )


def run() -> None:
    """Parse arguments and print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--layout", default="channels_last", choices=["channels_last", "contiguous"]
    )
    parser.add_argument("--workloads", default="cnn,resnet18")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peak = matmul_peak(device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {args.threads} threads"
    )
    print(f"{name}; torch {torch.__version__}; layout {args.layout}")
    print(f"fp32 matmul peak {peak:.0f} GFLOP/s")
    for w in workloads(args.workloads.split(","), device, args.layout):
        measure(w, device, peak, args.repeats)


if __name__ == "__main__":
    run()
