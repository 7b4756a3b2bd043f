"""LMP against matched baselines on real labelled images (Debian's mricron-data atlases), trained to a plateau.

    python benchmarks/segmentation.py --preset full --workers 2     # the whole comparison (see PRESETS)
    python benchmarks/segmentation.py --preset small                # the pipeline in seconds (the tests run it)

For every loss (``seg_losses.loss_grid``): the learning rate is chosen on the validation slab from
``lrs`` (seed 0, whose run is kept), then ``seeds`` seeds train to a validation plateau; the test
slab's counts at each run's best validation step give mIoU, the rarest third's IoU, per-class IoU
and Dice, boundary and small-region recall. Differences (a loss against CE; LMP at p > 1 against
LMP at p = 1, the top-k loss, at the same ratio; LMP at p = 1 against ``topk-image``) get 95 %
intervals from a bootstrap over seeds and test slices, and the verdict rule of ``seg_stats.verdict``.
The JSON written holds the configuration, versions, machine, seeds, learning curves and results;
``--plots DIR`` draws the figures of ``docs/segmentation.md`` from it. ``--resume`` keeps the runs
already finished (a ``.runs.jsonl`` file next to the output).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seg_data  # noqa: E402
import seg_stats  # noqa: E402
from seg_losses import loss_grid, p1_agreement, parse  # noqa: E402
from seg_results import analyse, environment, reproduction  # noqa: E402
from seg_train import Schedule, train  # noqa: E402


@dataclass(frozen=True)
class Preset:
    atlas: str
    stride: int
    losses: tuple
    lrs: tuple
    seeds: int
    schedule: Schedule
    block: int = 15
    gap: int = 1
    val: int = 2
    test: int = 2
    slice_stride: int = 2
    resamples: int = 2000
    cut: str = ""          # what this preset leaves out of the full comparison, in words


PLATEAU = Schedule(batch=4, width=16, eval_every=25, patience=12, max_steps=2500)  # stop after 300 flat steps

PRESETS = {
    "full": Preset("aal", 4, tuple(loss_grid()), (3e-3, 1e-2), 5, PLATEAU,
                   cut="learning rates 3e-3 and 1e-2 only (3e-3 already needs 1,000 to 2,000 steps to its plateau); "
                       "4 mm slices and an 11,941-parameter network; one subject"),
    "reduced": Preset("aal", 4, ("ce", "lmp-1-0.25", "lmp-1.7-0.25", "lmp-1.2-0.25", "lmp-3-0.25", "wce-sqrt", "ohem",
                                 "focal", "topk-image-0.25", "lmp-1-0.1", "lmp-1.7-0.1", "wce-median", "topk-batch-0.25",
                                 "lmp-1.2-0.1", "lmp-3-0.1"), (3e-3, 1e-2), 3, PLATEAU,
                      cut="3 seeds of 5; 15 of the 24 losses (ratio 0.5, wce-inverse, topk at 0.1 and topk-batch-0.1 "
                          "left out), trained in this order as far as time allowed; the full run retrains its runs"),
    "small": Preset("brodmann", 4, ("ce", "topk-image-0.25", "lmp-1-0.25", "lmp-1.7-0.25"), (3e-3, 1e-2), 2,
                    Schedule(batch=4, width=8, eval_every=10, patience=2, max_steps=30), block=10, slice_stride=4,
                    resamples=200,
                    cut="a smoke test of the pipeline: 4 losses, 2 seeds, at most 30 steps at 4 mm"),
}

_STATE = {}   # the dataset, the test slab's region masks and the schedule, once per process


def _start(preset: Preset, threads: int):
    import torch

    torch.set_num_threads(threads)
    data = load(preset)
    _STATE.update(data=data, masks=seg_stats.region_masks(data.splits["test"].labels), schedule=preset.schedule)


def load(preset: Preset):
    return seg_data.load(preset.atlas, preset.stride, preset.block, preset.gap, preset.val, preset.test,
                         preset.slice_stride)


def _run(task):
    loss, lr, seed = task
    result = train(_STATE["data"], loss, lr, seed, _STATE["schedule"], _STATE["masks"])
    class_counts, region_counts = result.pop("counts")
    return {**result, "class_counts": class_counts.tolist(), "region_counts": region_counts.tolist()}


def run_all(preset: Preset, workers: int, threads: int, journal: Path, resume: bool, train_runs: bool = True) -> list:
    """Every run of ``preset``: the learning-rate sweep at seed 0, then the other seeds at the chosen rate.

    Runs are done loss by loss (a cut-off run leaves whole losses behind); each finished run is appended
    to ``journal``, and with ``resume`` the runs found there are not run again."""
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from tqdm import tqdm

    done = {}
    if resume and journal.exists():
        for line in journal.read_text().splitlines():
            run = json.loads(line)
            done[(run["loss"], run["lr"], run["seed"])] = run
    elif journal.exists():
        journal.unlink()
    sweep = deque((loss, lr, 0) for loss in preset.losses for lr in preset.lrs)
    ready, in_flight, runs = deque(), {}, {}
    bar = tqdm(total=len(preset.losses) * (len(preset.lrs) + preset.seeds - 1), desc=f"segmentation {preset.atlas}",
               unit="run", mininterval=2, file=sys.stderr)

    def record(task, run):
        runs[task] = run
        bar.update()
        loss = task[0]
        if task[2] == 0 and all((loss, lr, 0) in runs for lr in preset.lrs):
            lr = chosen_lr(runs, loss, preset.lrs)
            ready.extend((loss, lr, seed) for seed in range(1, preset.seeds))

    if workers == 1:
        _start(preset, threads)
        executor = ThreadPoolExecutor(max_workers=1)
    else:
        executor = ProcessPoolExecutor(max_workers=workers, initializer=_start, initargs=(preset, threads))
    with executor, journal.open("a") as log:
        while sweep or ready or in_flight:
            while len(in_flight) < workers and (ready or sweep):
                task = (ready or sweep).popleft()
                if task in done:
                    record(task, done[task])
                elif train_runs:
                    in_flight[executor.submit(_run, task)] = task
            if not in_flight:
                continue
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                task = in_flight.pop(future)
                run = future.result()
                log.write(json.dumps(run) + "\n")
                log.flush()
                record(task, run)
    bar.close()
    return list(runs.values())


def chosen_lr(runs: dict, loss: str, lrs) -> float:
    """The rate of the sweep with the best validation mIoU (the smaller rate on a tie)."""
    scores = [runs[(loss, lr, 0)]["val_miou"] for lr in lrs]
    return lrs[int(np.argmax(scores))]


def agreement_checks(data, ratios) -> list:
    """LMP at p = 1 against topk-image at each ratio, on random logits over a batch of training slices."""
    import torch

    torch.manual_seed(0)
    target = torch.from_numpy(data.splits["train"].labels[:4])
    logits = torch.randn(target.shape[0], data.classes, *target.shape[1:], dtype=torch.float64)
    return [p1_agreement(logits, target, ratio) for ratio in ratios]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--out", type=Path, help="results JSON (default: benchmarks/results/segmentation_PRESET.json)")
    parser.add_argument("--workers", type=int, default=1, help="training processes (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--resume", action="store_true", help="keep the finished runs of the journal")
    parser.add_argument("--analyse-only", action="store_true", help="no training: analyse the journal's runs")
    parser.add_argument("--plots", type=Path, help="draw the figures into this folder")
    parser.add_argument("--reproduces", type=Path, metavar="RESULTS",
                        help="an earlier results JSON: record how this run reproduces it (identical runs, "
                             "differences inside its intervals)")
    args = parser.parse_args(argv)
    for name in ("workers", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be an integer >= 1, got {getattr(args, name)}")
    if args.reproduces and not args.reproduces.is_file():
        parser.error(f"--reproduces must name an earlier results JSON, got {str(args.reproduces)!r} (no such file)")
    if not seg_data.available(PRESETS[args.preset].atlas):
        print(seg_data.MISSING, file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    out = args.out or Path(__file__).resolve().parent / "results" / f"segmentation_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    journal = out.with_suffix(".runs.jsonl")
    start = time.perf_counter()
    data = load(preset)
    ratios = sorted({r for r in (parse_ratio(loss) for loss in preset.losses) if r is not None})
    agreement = agreement_checks(data, ratios)
    for check in agreement:
        if check["m"] == round(check["m"]) and max(check["value_difference"], check["gradient_difference"]) > 1e-9:
            raise RuntimeError(f"LMP at p = 1 is not the top-k loss at an integer m: {check}")
    runs = run_all(preset, args.workers, args.threads, journal, args.resume or args.analyse_only,
                   train_runs=not args.analyse_only)
    results = {"preset": args.preset, "command": " ".join(["python benchmarks/segmentation.py", *(argv or sys.argv[1:])]),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "config": {**dataclasses.asdict(preset), "workers": args.workers, "threads": args.threads},
               "environment": environment(), "data": data.describe(), "p1_equals_topk": agreement,
               **analyse(runs, preset.losses, preset.lrs, preset.seeds, data.train_frequency, preset.resamples),
               "elapsed_s": round(time.perf_counter() - start, 1), "analysed_only": args.analyse_only,
               "training_s": round(sum(run["seconds"] for run in runs), 1)}
    if args.reproduces:
        results["reproduces"] = {"of": args.reproduces.name,
                                 **reproduction(json.loads(args.reproduces.read_text()), results)}
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {results['elapsed_s']} s")
    if args.plots:
        from seg_plots import draw

        for path in draw(results, args.plots):
            print(f"wrote {path}")
    return 0


def parse_ratio(loss):
    kind, _, ratio = parse(loss)
    return ratio if kind in ("lmp", "topk") else None


if __name__ == "__main__":
    sys.exit(main())
