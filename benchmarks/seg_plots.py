"""The figures of the segmentation results page, drawn from the harness's JSON."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # every figure is saved and closed: no backend is chosen here (notebook 4 draws inline)
import numpy as np

from seg_losses import parse

VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "no clear difference": "tab:gray"}
SHOWN = (("miou", "mIoU"), ("rare_iou", "IoU of the rarest third"))


def _forest(ax, rows, metric, title):
    """One horizontal interval per row: (label, {difference, lo, hi, verdict})."""
    for y, (label, entry) in enumerate(rows):
        colour = VERDICT_COLOURS[entry["verdict"]]
        ax.errorbar(entry["difference"], y, xerr=[[entry["difference"] - entry["lo"]], [entry["hi"] - entry["difference"]]],
                    fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"difference in {metric} (points), 95 % interval")


def _legend(fig):
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)


def _forest_figure(rows, path, what):
    """Both shown metrics' intervals for rows of (label, comparison entry)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.32 * len(rows) + 1.8), sharey=True)
    for ax, (metric, label) in zip(axes, SHOWN):
        _forest(ax, [(name, entry[metric]) for name, entry in rows], label, f"{label}: {what}")
    _legend(fig)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def against_ce(results, path):
    _forest_figure(list(results["comparisons"].get("vs_ce", {}).items()), path, "loss - CE")


def against_p1(results, path):
    """LMP at p > 1 minus LMP at p = 1 (the top-k loss) at the same ratio, and p = 1 minus topk-image."""
    rows = [(f"{loss} - {entry['against']}", entry) for group in ("vs_p1", "p1_vs_topk")
            for loss, entry in sorted(results["comparisons"].get(group, {}).items(), key=lambda kv: parse(kv[0])[::-1])]
    _forest_figure(rows, path, "at the same ratio")


def scores(results, path):
    """Each loss's mean test score over seeds with its bootstrap interval."""
    summary = results["summary"]
    losses = list(summary)
    fig, axes = plt.subplots(1, 4, figsize=(13, 0.3 * len(losses) + 1.5), sharey=True)
    names = (*SHOWN, ("boundary_recall", "boundary recall"), ("small_recall", "small-region recall"))
    for ax, (metric, label) in zip(axes, names):
        for y, loss in enumerate(losses):
            s = summary[loss][metric]
            ax.errorbar(s["mean"], y, xerr=[[s["mean"] - s["lo"]], [s["hi"] - s["mean"]]], fmt="o",
                        color="tab:blue" if loss == "ce" else "black", capsize=3)
        ax.set_yticks(range(len(losses)), losses)
        ax.set_title(f"{label} (%)", fontsize=10)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_class(results, path, losses):
    """Per-class test IoU (mean over seeds) against the class's share of the training pixels; the
    background (class 0) is left out, and the lines are means over six bins of equally many classes."""
    table = results["per_class"]
    classes, frequency = np.array(table["classes"]), np.array(table["train_frequency"])
    shown = (classes != 0) & (frequency > 0)
    edges = np.quantile(frequency[shown], np.linspace(0, 1, 7))
    which = np.clip(np.searchsorted(edges, frequency, side="right") - 1, 0, 5)
    fig, ax = plt.subplots(figsize=(7, 4))
    for loss in losses:
        iou = np.array([np.nan if v is None else v for v in table[loss]["iou"]])
        dots = ax.scatter(frequency[shown], iou[shown], s=9, alpha=0.45, label=loss)
        centres = [np.exp(np.mean(np.log(frequency[shown & (which == b)]))) for b in range(6)]
        means = [np.nanmean(iou[shown & (which == b)]) for b in range(6)]
        ax.plot(centres, means, color=dots.get_facecolor()[0][:3], lw=2)
    ax.set_xscale("log")
    ax.set_xlabel("share of the training pixels in the class")
    ax.set_ylabel("test IoU (%), mean over seeds")
    ax.set_title("per-class IoU against class frequency (background left out; lines: bin means)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves(results, path, losses):
    """Validation mIoU over training steps, every seed, at each loss's chosen learning rate."""
    fig, axes = plt.subplots(1, len(losses), figsize=(3.2 * len(losses), 3), sharey=True, squeeze=False)
    for ax, loss in zip(axes[0], losses):
        for run in results["runs"][loss]:
            curve = np.array(run["curve"])
            ax.plot(curve[:, 0], curve[:, 2], lw=1)
            ax.plot(run["best_step"], run["val_miou"], "k.", ms=5)
        ax.set_title(f"{loss} (lr {results['chosen_lr'][loss]:g})", fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("validation mIoU (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(results: dict, folder: Path) -> list:
    """Every figure into ``folder``; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if "summary" not in results:
        return []
    done = list(results["summary"])
    shown = [loss for loss in ("ce", "lmp-1-0.25", "lmp-1.7-0.25", "wce-sqrt", "ohem") if loss in done] or done[:3]
    paths = {"segmentation_scores.png": lambda p: scores(results, p),
             "segmentation_vs_ce.png": lambda p: against_ce(results, p),
             "segmentation_vs_p1.png": lambda p: against_p1(results, p),
             "segmentation_per_class.png": lambda p: per_class(results, p, shown[:3]),
             "segmentation_curves.png": lambda p: curves(results, p, shown)}
    written = []
    for name, draw_one in paths.items():
        draw_one(folder / name)
        written.append(folder / name)
    return written


def verdict_table(results: dict, group: str) -> str:
    """The markdown table of one comparison group (``vs_ce``, ``vs_p1``, ``p1_vs_topk``): each pair's
    mIoU and rarest-third differences with their 95 % intervals and verdicts."""
    lines = ["| loss | against | mIoU difference [95 %] | verdict | rarest-third IoU difference [95 %] | verdict |",
             "|---|---|---:|---|---:|---|"]
    for loss, entry in results["comparisons"].get(group, {}).items():
        cells = [f"{e['difference']:+.1f} [{e['lo']:+.1f}, {e['hi']:+.1f}] | {e['verdict']}"
                 for e in (entry["miou"], entry["rare_iou"])]
        lines.append(f"| `{loss}` | `{entry['against']}` | {' | '.join(cells)} |")
    return "\n".join(lines)
