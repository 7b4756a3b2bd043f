"""From the runs of the segmentation harness to its results: per-loss scores with intervals, the paired
comparisons and their verdicts, per-class IoU and Dice, learning curves, versions and machine."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

import numpy as np

import seg_stats
from seg_losses import parse

BASELINE = "ce"


def comparisons(losses) -> list:
    """(name, a, b) pairs: every loss against CE; LMP at p > 1 against LMP at p = 1 (the top-k loss) at
    the same ratio; LMP at p = 1 against ``topk-image`` at the same ratio (the agreement check)."""
    losses = list(losses)
    out = [("vs_ce", loss, BASELINE) for loss in losses if loss != BASELINE and BASELINE in losses]
    for loss in losses:
        kind, p, ratio = parse(loss)
        if kind != "lmp":
            continue
        if p > 1 and f"lmp-1-{ratio:g}" in losses:
            out.append(("vs_p1", loss, f"lmp-1-{ratio:g}"))
        if p == 1 and f"topk-image-{ratio:g}" in losses:
            out.append(("p1_vs_topk", loss, f"topk-image-{ratio:g}"))
    return out


def _round(values, digits=2):
    return [None if not np.isfinite(v) else round(float(v), digits) for v in values]


def analyse(runs: list, losses, lrs, seeds: int, train_frequency: np.ndarray, resamples: int) -> dict:
    """The results of the runs at each loss's chosen rate; losses without all ``seeds`` runs are listed
    as incomplete and left out of the comparison (the bootstrap pairs seeds, so every loss needs all)."""
    by_key = {(r["loss"], r["lr"], r["seed"]): r for r in runs}
    chosen, complete = {}, {}
    for loss in losses:
        sweep = [by_key.get((loss, lr, 0)) for lr in lrs]
        if any(r is None for r in sweep):
            continue
        chosen[loss] = lrs[int(np.argmax([r["val_miou"] for r in sweep]))]
        seed_runs = [by_key.get((loss, chosen[loss], s)) for s in range(seeds)]
        if all(r is not None for r in seed_runs):
            complete[loss] = seed_runs
    out = {"chosen_lr": chosen, "incomplete": [loss for loss in losses if loss not in complete],
           "sweep": {loss: {f"{lr:g}": round(by_key[(loss, lr, 0)]["val_miou"], 3) for lr in lrs} for loss in chosen}}
    if not complete:
        return out
    counts = {loss: (np.array([r["class_counts"] for r in rs]), np.array([r["region_counts"] for r in rs]))
              for loss, rs in complete.items()}
    class_counts, region_counts = next(iter(counts.values()))
    evaluated, rare = seg_stats.evaluated_classes(class_counts[0], train_frequency)
    boot = seg_stats.Bootstrap(seeds, class_counts.shape[1], resamples)
    per_seed, point, draws, per_class = {}, {}, {}, {}
    for loss, (cc, rc) in counts.items():
        seed_scores = seg_stats.scores(cc.sum(axis=1), rc.sum(axis=1), evaluated, rare)
        per_seed[loss] = {name: _round(v, 3) for name, v in seed_scores.items()}
        point[loss] = {name: float(np.mean(v)) for name, v in seed_scores.items()}
        draws[loss] = boot.draws(cc, rc, evaluated, rare)
        iou, dice = seg_stats.iou_dice(cc.sum(axis=1)[:, evaluated])
        with np.errstate(invalid="ignore"):
            per_class[loss] = {"iou": _round(100 * np.nanmean(iou, axis=0), 1),
                               "dice": _round(100 * np.nanmean(dice, axis=0), 1)}
    summary = {loss: {name: {"mean": round(point[loss][name], 3),
                             **dict(zip(("lo", "hi"), _round(seg_stats.interval(draws[loss][name]), 3)))}
                      for name in seg_stats.METRICS} for loss in complete}
    compared = {}
    for group, a, b in comparisons(complete):
        compared.setdefault(group, {})[a] = {"against": b, **seg_stats.compare(draws[a], draws[b], point[a], point[b])}
    out.update(
        evaluation={"test_slices": int(class_counts.shape[1]), "seeds": list(range(seeds)), "resamples": resamples,
                    "evaluated_classes": evaluated.tolist(), "rare_classes": rare.tolist(),
                    "small_region_pixels": seg_stats.SMALL_REGION},
        summary=summary, per_seed=per_seed, comparisons=compared,
        per_class={"classes": evaluated.tolist(), "train_frequency": [float(f"{f:.4g}") for f in
                                                                      train_frequency[evaluated]], **per_class},
        runs={loss: [{k: r[k] for k in ("seed", "lr", "steps", "best_step", "plateau", "val_miou", "seconds",
                                       "curve")} for r in rs] for loss, rs in complete.items()})
    return out


def reproduction(earlier: dict, later: dict) -> dict:
    """How a later run of the harness reproduces an earlier one: each run both trained (same loss, rate and
    seed) is ``identical`` when its validation score and step count are equal; each comparison both made is
    ``inside`` when the later difference lies in the earlier 95 % interval (on every metric both report)."""
    runs = [(loss, a, b) for loss, earlier_runs in earlier.get("runs", {}).items()
            for a in earlier_runs for b in later.get("runs", {}).get(loss, [])
            if (a["seed"], a["lr"]) == (b["seed"], b["lr"])]
    identical = sum((a["val_miou"], a["steps"]) == (b["val_miou"], b["steps"]) for _, a, b in runs)
    compared = []
    for group, entries in earlier.get("comparisons", {}).items():
        for loss, entry in entries.items():
            again = later.get("comparisons", {}).get(group, {}).get(loss)
            if again is None or again["against"] != entry["against"]:
                continue
            for metric in ("miou", "rare_iou"):
                first, second = entry[metric], again[metric]
                compared.append({"group": group, "loss": loss, "against": entry["against"], "metric": metric,
                                 "earlier": [first["difference"], first["lo"], first["hi"]],
                                 "later": second["difference"],
                                 "inside": first["lo"] <= second["difference"] <= first["hi"],
                                 "verdicts": [first["verdict"], second["verdict"]]})
    return {"runs_in_both": len(runs), "runs_identical": identical, "comparisons": compared,
            "inside": sum(c["inside"] for c in compared),
            "verdicts_changed": sum(c["verdicts"][0] != c["verdicts"][1] for c in compared)}


def environment() -> dict:
    """Versions and machine."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(),
            **{name: version(name) for name in ("numpy", "torch", "nibabel", "scipy", "lmp-theory")}}
