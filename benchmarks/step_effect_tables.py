"""`step_effect.py`'s summaries: means over seeds, their Markdown tables, and ``--merge``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from step_effect_recovery import add_control

FCU_KEYS = ("iterations", "lr", "low_freq_from")  # a setting of FCU's step
NEGSUB_KEYS = ("scaling",)  # a setting of NegSub's step


def summary_rows(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Per setting (``keys``), the mean over seeds of each measurement, and the seeds' min/max."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for setting, cell in groups.items():
        entry: dict[str, Any] = dict(zip(keys, setting, strict=True))
        live = [r for r in cell if not r["diverged"]]
        entry["diverged_seeds"] = len(cell) - len(live)
        measured = ("changed", "changed_test", "forget_after", "retain_after", "test_after")
        for name in (*measured, "rel_l2", "seconds"):
            values = [r[name] for r in live]
            entry[name] = sum(values) / len(values) if values else None
        entry["changed_min"] = min((r["changed"] for r in live), default=None)
        entry["changed_max"] = max((r["changed"] for r in live), default=None)
        out.append(entry)
    return out


def print_table(title: str, entries: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """A Markdown table of `summary_rows`."""
    print(f"\n{title}\n")
    head = [*keys, "D_f changed % (min–max)", "test changed %", "forget after", "retain after"]
    head += ["test after", "rel. L2"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for e in entries:
        cells = [f"{e[k]:g}" if isinstance(e[k], float) else str(e[k]) for k in keys]
        if e["changed"] is None:
            cells += ["diverged"] + [""] * 5
        else:
            cells += [
                f"{e['changed']:.2f} ({e['changed_min']:.2f}–{e['changed_max']:.2f})"
                + (f", {e['diverged_seeds']} diverged" if e["diverged_seeds"] else ""),
                f"{e['changed_test']:.2f}",
                f"{e['forget_after']:.2f}",
                f"{e['retain_after']:.2f}",
                f"{e['test_after']:.2f}",
                f"{e['rel_l2']:.2e}",
            ]
        print("| " + " | ".join(cells) + " |")


def summarized(rows: list[dict[str, Any]], keys: Sequence[str], title: str) -> dict[str, Any]:
    """A part's ``rows`` and their `summary_rows` (``summary``), printed under ``title``."""
    part = {"rows": rows, "summary": summary_rows(rows, keys)}
    print_table(title, part["summary"], keys)
    return part


def merge(paths: Sequence[Path], out: Path) -> None:
    """One JSON from the outputs of several runs (``--parts``), summaries from the rows."""
    result: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    controls: list[dict[str, Any]] = []
    for path in paths:
        part = json.loads(path.read_text())
        seconds.update({f"{k} ({path.name})": v for k, v in part.pop("seconds", {}).items()})
        control = part.pop("control", None)
        if control is not None:
            controls.append(control)
        recovery = part.pop("recovery", None)
        if recovery is not None:
            merged = result.setdefault("recovery", {"rounds": recovery["rounds"]})
            merged.setdefault("by_recovery_lr", {}).update(recovery["by_recovery_lr"])
        config = part.pop("config")
        config.pop("recovery_lrs", None)  # below, from the merged measurements
        result.setdefault("config", {}).update(config)
        result.update(part)
    for control in controls:
        add_control(result["recovery"]["by_recovery_lr"], control)
    for holder in (result, result.get("fmnist", {})):
        if "fcu" in holder:
            holder["fcu"]["summary"] = summary_rows(holder["fcu"]["rows"], FCU_KEYS)
            print_table("FCU's step alone", holder["fcu"]["summary"], FCU_KEYS)
        if "negsub" in holder:
            holder["negsub"]["summary"] = summary_rows(holder["negsub"]["rows"], NEGSUB_KEYS)
            print_table("NegSub's step alone", holder["negsub"]["summary"], NEGSUB_KEYS)
    if "recovery" in result:
        result["config"]["recovery_lrs"] = list(result["recovery"]["by_recovery_lr"])
    result["seconds"] = seconds
    write(result, out)
    print(f"wrote {out}")


def write(result: dict[str, Any], out: Path) -> None:
    """Write ``result`` to ``out`` as indented JSON (its folder made if missing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
