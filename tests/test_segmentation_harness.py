"""benchmarks/segmentation.py: its small preset runs end to end, and its parts compute what they say."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import seg_data  # noqa: E402
import seg_losses  # noqa: E402
import seg_stats  # noqa: E402
from seg_results import comparisons, reproduction  # noqa: E402

needs_atlas = pytest.mark.skipif(not seg_data.available("brodmann"), reason=seg_data.MISSING)


@needs_atlas
def test_small_preset_runs_end_to_end(tmp_path):
    out = tmp_path / "small.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "segmentation.py"), "--preset", "small",
                          "--out", str(out), "--plots", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "run/s" in run.stderr or "s/run" in run.stderr  # the progress bar
    results = json.loads(out.read_text())
    assert out.stat().st_size < 1e6
    losses = ("ce", "topk-image-0.25", "lmp-1-0.25", "lmp-1.7-0.25")
    assert results["incomplete"] == [] and list(results["summary"]) == list(losses)
    for key in ("python", "numpy", "torch", "nibabel", "cpu"):
        assert results["environment"][key]
    assert results["evaluation"]["seeds"] == [0, 1]
    assert set(results["comparisons"]) == {"vs_ce", "vs_p1", "p1_vs_topk"}
    assert results["comparisons"]["vs_p1"]["lmp-1.7-0.25"]["against"] == "lmp-1-0.25"
    for loss in losses:
        assert len(results["runs"][loss]) == 2 and all(run["curve"] for run in results["runs"][loss])
        assert set(results["sweep"][loss]) == {"0.003", "0.01"}
        summary = results["summary"][loss]["miou"]
        assert summary["lo"] <= summary["mean"] <= summary["hi"]
    for name in ("scores", "vs_ce", "vs_p1", "per_class", "curves"):
        assert (tmp_path / f"segmentation_{name}.png").stat().st_size > 0
    resumed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "segmentation.py"), "--preset", "small",
                              "--out", str(out), "--analyse-only"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(out.read_text())["summary"] == results["summary"]  # the journal's runs, analysed again


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("pool", ["image", "batch"])
def test_lmp_at_p1_is_the_top_k_loss_where_ratio_n_is_an_integer(ratio, pool):
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 8, 10, dtype=torch.float64)   # 80 pixels per image: ratio * n is an integer
    target = torch.randint(0, 5, (3, 8, 10))
    values, grads = [], []
    for name in (f"topk-{pool}-{ratio:g}", f"lmp-1-{ratio:g}"):
        x = logits.clone().requires_grad_(True)
        if name.startswith("lmp") and pool == "batch":
            from solvers.torch import LossMaxPooling

            value = LossMaxPooling(p=1, ratio=ratio, pool="batch")(x, target)
        else:
            value = seg_losses.make_loss(name, np.ones(5))(x, target)
        value.backward()
        values.append(value.detach())
        grads.append(x.grad)
    assert torch.allclose(values[0], values[1], rtol=1e-12, atol=0)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=1e-14)


def test_p1_agreement_reports_the_fractional_pixel():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 7, 9, dtype=torch.float64)   # 63 pixels: m = 0.25 * 63 = 15.75, top-k takes 16
    target = torch.randint(0, 4, (2, 7, 9))
    check = seg_losses.p1_agreement(logits, target, 0.25)
    assert check["m"] == 15.75 and check["value_difference"] > 1e-6  # the check can tell the two apart
    exact = seg_losses.p1_agreement(logits[..., :8], target[..., :8], 0.25)  # 56 pixels: m = 14
    assert exact["value_difference"] < 1e-12 and exact["gradient_difference"] < 1e-12


def test_slab_split_leaves_gaps_and_covers_the_volume():
    for count, block, gap, val, test in [(75, 15, 1, 2, 2), (40, 10, 2, 1, 2), (33, 10, 1, 2, 2)]:
        split = seg_data.slab_split(count, block, gap, val, test)
        where = {i: name for name, idx in split.items() for i in idx}
        assert sum(len(idx) for idx in split.values()) == len(where)   # disjoint
        for i, name in where.items():
            for j in range(i - gap, i + gap + 1):
                assert where.get(j, name) == name, (count, i, j)   # no other split within `gap` slices
        blocks = count // block
        assert len(split["val"]) == blocks * val and len(split["test"]) == blocks * test
        assert split["test"].max() > count - block - 1   # every block, to the last whole one, has test slices


def test_slab_split_rejects_bad_layouts():
    with pytest.raises(ValueError, match="block must be > val"):
        seg_data.slab_split(50, 6, 1, 2, 2)
    with pytest.raises(ValueError, match="gap must be an integer >= 0"):
        seg_data.slab_split(50, 10, -1, 2, 2)
    with pytest.raises(ValueError, match="atlas must be one of"):
        seg_data.load("mni")


@needs_atlas
def test_atlas_loads_as_labelled_slices():
    data = seg_data.load("brodmann", stride=4, block=10)
    train = data.splits["train"]
    assert train.inputs.shape[1] == 4 and train.inputs.shape[2:] == train.labels.shape[1:]
    assert all(size % seg_data.PAD_TO == 0 for size in train.labels.shape[1:])
    assert train.labels.min() == 0 and train.labels.max() < data.classes
    assert data.label_values[0] == 0 and np.isclose(data.train_frequency.sum(), 1)
    assert 0.3 < data.train_frequency[0] < 0.9   # background, cropped to the labelled box
    assert set(data.describe()["slices"]) == {"train", "val", "test"}


def test_class_weights_by_hand():
    f = np.array([0.5, 0.3, 0.15, 0.05])
    assert np.allclose(seg_losses.class_weights(f, "inverse"), 1 / (4 * f))   # pixel-average 1: sum f w = 1
    sqrt = 1 / np.sqrt(f)
    assert np.allclose(seg_losses.class_weights(f, "sqrt"), sqrt / np.sum(f * sqrt))
    median = np.median(f) / f
    assert np.allclose(seg_losses.class_weights(f, "median"), median / np.sum(f * median))
    rare = np.array([0.9989, 0.001, 0.0001, 0.0])
    weights = seg_losses.class_weights(rare, "inverse")
    assert weights.max() == seg_losses.WEIGHT_CLIP and weights[-1] == 0   # clipped; absent class: 0


def test_median_frequency_weights_are_the_inverse_weights_after_normalisation():
    """median(f) / f is a constant times 1 / f, so once both are scaled to a pixel average of 1 (and then
    clipped alike) wce-median and wce-inverse are one loss; the results page says so."""
    f = np.random.default_rng(3).dirichlet(np.full(40, 0.3))
    f[5] = 0.0                                    # a class absent from training
    assert np.allclose(seg_losses.class_weights(f, "median"), seg_losses.class_weights(f, "inverse"), rtol=1e-12)
    assert not np.allclose(seg_losses.class_weights(f, "sqrt"), seg_losses.class_weights(f, "inverse"))


def test_ohem_keeps_what_mmseg_keeps():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 10, 10)
    target = torch.randint(0, 3, (2, 10, 10))
    pixel = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    prob = logits.softmax(1).gather(1, target[:, None]).flatten().numpy()
    kept = round(seg_losses.OHEM_MIN_KEPT * 100) * 2
    threshold = max(np.sort(prob)[min(kept, prob.size - 1)], seg_losses.OHEM_THRESHOLD)  # mmseg's rule
    keep = prob < threshold
    expected = pixel.flatten().numpy()[keep].mean()
    assert np.isclose(float(seg_losses.ohem(pixel, logits, target)), expected, rtol=1e-6)
    confident = torch.zeros(1, 3, 10, 10)
    confident[:, 0] = 20.0   # every pixel right and sure: only the min-kept hardest remain
    easy = torch.zeros(1, 10, 10, dtype=torch.int64)
    easy[0, 0, :3] = 1
    value = seg_losses.ohem(torch.nn.functional.cross_entropy(confident, easy, reduction="none"), confident, easy)
    assert value > 10   # the three wrong pixels dominate the kept 10


def test_loss_names_are_checked():
    assert len(seg_losses.loss_grid()) == 24 and len(set(seg_losses.loss_grid())) == 24
    for bad in ("lmp-0.5-0.1", "topk-image-0", "wce-log", "lmp-2", "dice"):
        with pytest.raises(ValueError, match="loss must be ce, focal, ohem"):
            seg_losses.parse(bad)


def test_metrics_by_hand(monkeypatch):
    monkeypatch.setattr(seg_stats, "SMALL_REGION", 2)   # a 4 x 4 image's regions are all small at 16
    labels = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 0]]])
    pred = np.array([[[0, 0, 1, 0], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 0, 0]]])
    boundary, small = seg_stats.region_masks(labels)
    assert small.sum() == 1 and small[0, 3, 3]              # the lone background pixel
    assert boundary[0, 0, 1] and not boundary[0, 0, 0]
    class_counts, region_counts = seg_stats.slice_counts(pred, labels, 3, boundary, small)
    # [in common, labelled, predicted]: class 0: 5, 5, 7; class 1: 3, 4, 3; class 2: 6, 7, 6
    assert class_counts[0].tolist() == [[5, 5, 7], [3, 4, 3], [6, 7, 6]]
    iou, dice = seg_stats.iou_dice(class_counts[0])
    assert np.allclose(iou, [5 / 7, 3 / 4, 6 / 7]) and np.allclose(dice, [10 / 12, 6 / 7, 12 / 13])
    metrics = seg_stats.scores(class_counts.sum(0), region_counts.sum(0), np.arange(3), np.array([1]))
    assert np.isclose(metrics["miou"], 100 * np.mean([5 / 7, 3 / 4, 6 / 7])) and np.isclose(metrics["rare_iou"], 75)
    assert metrics["small_recall"] == 100


def test_rarest_third_is_chosen_by_training_frequency():
    counts = np.zeros((2, 6, 3), dtype=np.int64)
    counts[:, [0, 1, 2, 3, 5], 1] = 1   # class 4 absent from the test slices
    evaluated, rare = seg_stats.evaluated_classes(counts, np.array([0.5, 0.01, 0.2, 0.001, 0.0001, 0.05]))
    assert evaluated.tolist() == [0, 1, 2, 3, 5] and rare.tolist() == [1, 3]


def _counts(iou_per_seed, slices=12, classes=4, pixels=100):
    """Class counts (S, T, C, 3) whose every class has the given IoU in each seed, on every slice."""
    out = np.zeros((len(iou_per_seed), slices, classes, 3), dtype=np.int64)
    for s, iou in enumerate(iou_per_seed):
        inter = round(pixels * iou)
        out[s, :, :] = [inter, pixels, pixels]   # union = 2 * pixels - inter
    return out


def test_verdict_is_worse_when_the_interval_excludes_zero_below_whatever_one_seed_did():
    assert seg_stats.verdict(-2.0, -0.1) == "worse" and seg_stats.verdict(0.1, 2) == "better"
    assert seg_stats.verdict(-1, 1) == "no clear difference"
    rng = np.random.default_rng(0)
    base = _counts([0.6, 0.6, 0.6, 0.6, 0.6])
    base[..., 0] += rng.integers(-3, 4, size=base.shape[:-1])   # slice-to-slice noise
    worse = _counts([0.62, 0.45, 0.44, 0.46, 0.45])           # one seed wins, four lose
    regions = np.ones((5, 12, 4), dtype=np.int64)
    boot = seg_stats.Bootstrap(5, 12, 1000)
    classes = np.arange(4)
    a, b = (boot.draws(c, regions, classes, classes[:2]) for c in (worse, base))
    pa, pb = (seg_stats.scores(c.sum(1), regions.sum(1), classes, classes[:2]) for c in (worse, base))
    result = seg_stats.compare(a, b, {k: v.mean() for k, v in pa.items()}, {k: v.mean() for k, v in pb.items()})
    assert result["miou"]["verdict"] == "worse" and result["miou"]["hi"] < 0
    same = seg_stats.compare(b, b, {k: v.mean() for k, v in pb.items()}, {k: v.mean() for k, v in pb.items()})
    assert same["miou"] == {"difference": 0.0, "lo": 0.0, "hi": 0.0, "verdict": "no clear difference"}


def test_comparisons_pair_each_lmp_with_p1_at_its_ratio():
    pairs = comparisons(["ce", "topk-image-0.1", "lmp-1-0.1", "lmp-1.7-0.1", "lmp-3-0.25"])
    assert ("vs_p1", "lmp-1.7-0.1", "lmp-1-0.1") in pairs and ("p1_vs_topk", "lmp-1-0.1", "topk-image-0.1") in pairs
    assert not any(a == "lmp-3-0.25" and group == "vs_p1" for group, a, _ in pairs)   # no p = 1 at 0.25
    assert sum(group == "vs_ce" for group, _, _ in pairs) == 4


def test_command_line_rejects_bad_arguments(tmp_path):
    for arguments, message in ((["--workers", "0"], "--workers must be an integer >= 1"),
                               (["--reproduces", str(tmp_path / "absent.json")], "--reproduces must name an earlier")):
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "segmentation.py"), *arguments],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and message in run.stderr, arguments


def _entry(difference, lo, hi):
    return {"difference": difference, "lo": lo, "hi": hi, "verdict": seg_stats.verdict(lo, hi)}


def test_reproduction_counts_identical_runs_and_differences_inside_the_earlier_intervals():
    run = {"seed": 0, "lr": 0.01, "val_miou": 30.0, "steps": 500}
    earlier = {"runs": {"ce": [run, {**run, "seed": 1}], "focal": [run]},
               "comparisons": {"vs_ce": {"focal": {"against": "ce", "miou": _entry(1.0, 0.2, 2.0),
                                                   "rare_iou": _entry(0.5, -1.0, 2.0)}}}}
    later = {"runs": {"ce": [run, {**run, "seed": 1, "val_miou": 30.5}, {**run, "seed": 2}],
                      "focal": [{**run, "lr": 0.003}]},
             "comparisons": {"vs_ce": {"focal": {"against": "ce", "miou": _entry(0.3, -0.5, 0.8),
                                                 "rare_iou": _entry(2.5, 1.0, 4.0)}}}}
    result = reproduction(earlier, later)
    assert (result["runs_in_both"], result["runs_identical"]) == (2, 1)   # other rates and seeds are not pairs
    miou, rare = result["comparisons"]
    assert miou["inside"] and miou["verdicts"] == ["better", "no clear difference"]
    assert not rare["inside"] and rare["verdicts"] == ["no clear difference", "better"]
    assert (result["inside"], result["verdicts_changed"]) == (1, 2)


def test_schedule_is_checked():
    from seg_train import Schedule

    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        Schedule(patience=0)
    with pytest.raises(ValueError, match="max_steps must be >= eval_every"):
        Schedule(eval_every=50, max_steps=20)


def test_results_page_shows_the_stored_results():
    from seg_plots import verdict_table

    page = (ROOT / "docs" / "segmentation.md").read_text()
    results = json.loads((ROOT / "benchmarks" / "results" / "segmentation_full.json").read_text())
    assert (ROOT / "benchmarks" / "results" / "segmentation_full.json").stat().st_size < 1e6
    for group in ("vs_ce", "vs_p1", "p1_vs_topk"):
        assert verdict_table(results, group) in page, group   # the page's tables are the stored verdicts
    rep = results["reproduces"]   # the second run against the first (the stored reduced run)
    assert f"all {rep['runs_identical']} of {rep['runs_in_both']} are identical" in page
    assert f"{rep['inside']} of {len(rep['comparisons'])}; {rep['verdicts_changed']} verdicts changed" in page
    for figure in ("scores", "vs_ce", "vs_p1", "per_class", "curves"):
        assert f"](segmentation/segmentation_{figure}.png)" in page
        assert (ROOT / "docs" / "segmentation" / f"segmentation_{figure}.png").is_file()
    assert "segmentation.md" in (ROOT / "mkdocs.yml").read_text()
