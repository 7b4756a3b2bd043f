"""Turn the benchmark results into docs/benchmarks.md and a log-log plot beside it."""

from __future__ import annotations

import math
from pathlib import Path

TARGET_N = 2**21


def _ms(rows, **match) -> float | None:
    for r in rows:
        if all(r[k] == v for k, v in match.items()):
            return r["ms"]
    return None


def _targets(res) -> list[tuple[str, str, float, float]]:
    """(target, measured as, figure, limit) for each target of issue 21 that this run measured."""
    cpu, out = res["cpu"], []
    if max(r["n"] for r in cpu) < TARGET_N:
        return out

    def one(p, contender):  # one pool of 2^21 float32
        return _ms(cpu, n=TARGET_N, dtype="float32", p=p, contender=contender)

    def add(target, how, a, b, limit):
        if a is not None and b is not None:
            out.append((target, how, a / b, limit))

    add("NumPy p = 1 <= 1.5 x np.partition", "auto / np.partition", one(1.0, "numpy auto"), one(1.0, "np.partition"), 1.5)
    for p, limit in ((1.7, 4.0), (10.0, 4.0), (1.001, 8.0)):
        add(f"NumPy p = {p:g} <= {limit:g} x a power pass", "auto / np.power(l, 0.7)", one(p, "numpy auto"),
            one(p, "np.power"), limit)
    add("NumPy p = inf <= 2.5 x np.sum", "auto / np.sum", one(math.inf, "numpy auto"), one(math.inf, "np.sum"), 2.5)
    for p, limit in ((1.0, 1.3), (1.7, 1.6)):
        add(f"forced sort, p = {p:g} <= {limit:g} x np.sort", "numpy sort / np.sort", one(p, "numpy sort"),
            one(p, "np.sort"), limit)
    for p in (1.0, 1.7, 10.0):
        faster = min(filter(None, (one(p, "numpy sort"), one(p, "numpy select"))), default=None)
        add(f"auto, p = {p:g} <= 1.05 x the faster of sort and select", "auto / min(sort, select)",
            one(p, "numpy auto"), faster, 1.05)
    for p in (1.0, 1.7, math.inf):
        add(f"Torch CPU / NumPy, p = {p:g} <= 1.2", "torch auto / numpy auto", one(p, "torch auto"),
            one(p, "numpy auto"), 1.2)
    batch = res["batched"]
    for p, floor, limit in ((1.0, "np.partition", 1.5), (1.7, "np.power", 4.0), (math.inf, "np.sum", 2.5)):
        add(f"16 pools of 2^17, p = {p:g} <= {limit:g} x {floor}", f"auto / {floor}",
            _ms(batch, p=p, contender="numpy auto"), _ms(batch, p=p, contender=floor), limit)
    for r in res["layer"]:
        out.append((f"LossMaxPooling(p=1.7, ratio=0.3) fwd+bwd {r['shape']} <= 1.1 x nn.CrossEntropyLoss",
                    "lmp / cross-entropy, CPU", r["ratio"], 1.1))
    for lib, how in (("numpy", "tracemalloc"), ("torch", "peak RSS")):
        rows = [r for r in res["memory"] if r["lib"] == lib]
        if rows:
            worst = max(rows, key=lambda r: r["ratio"])
            out.append((f"{lib} peak extra memory, every case and method <= 4 x the input",
                        f"{how}, worst: {worst['shape']}, {worst['method']}, p = {worst['p']:g}", worst["ratio"], 4.0))
    for r in res["gpu"]:
        limit = 1.5 if "LossMaxPooling" in r["what"] else 1.0
        out.append((f"GPU {r['what']} <= {limit} x {r['baseline']}", f"/ {r['baseline']}", r["ratio"], limit))
    return out


def _growth(res) -> list[str]:
    """Nanoseconds per loss of ``numpy auto`` at every size: how the cost grows with n."""
    cpu = [r for r in res["cpu"] if r["dtype"] == "float32"]
    sizes = sorted({r["n"] for r in cpu})
    ps = sorted({r["p"] for r in cpu})
    lines = ["## How the cost grows with n (float32, one pool, `method=\"auto\"`, ns per loss)", "",
             "| n | " + " | ".join(f"p = {p:g}" for p in ps) + " | np.sort |", "|---:|" + "---:|" * (len(ps) + 1)]
    for n in sizes:
        cells = [_ms(cpu, n=n, p=p, contender="numpy auto") for p in ps] + [_ms(cpu, n=n, p=ps[0], contender="np.sort")]
        lines.append(f"| 2^{int(math.log2(n))} | " + " | ".join("-" if c is None else f"{1e6 * c / n:.3g}" for c in cells)
                     + " |")
    return lines + [""]


def _shapes_section(res) -> list[str]:
    """``auto`` on the memory cases' shapes (zeros and negative losses), against np.sort along the same axis."""
    rows = res.get("shapes") or []
    if not rows:
        return []
    total = max(r["pools"] * r["n"] for r in rows)  # the one pool's size
    lines = ["", f"## Shapes: 2^{int(math.log2(total))} float32 losses, an eighth zero and an eighth negative "
             "(median ms; ratio to np.sort along the same axis)", "",
             "From many tiny pools to one pool: the per-pool costs show where the pools are small.", "",
             "| pools x n | p | np.sum | np.sort | numpy auto | / np.sort | torch auto | / np.sort |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key in dict.fromkeys((r["pools"], r["n"], r["p"]) for r in rows):
        pools, n, p = key
        cell = {r["contender"]: r for r in rows if (r["pools"], r["n"], r["p"]) == key}
        lines.append(f"| {pools} x {n} | {p:g} | {cell['np.sum']['ms']:.3g} | {cell['np.sort']['ms']:.3g} | "
                     f"{cell['numpy auto']['ms']:.3g} | {cell['numpy auto']['over_np_sort']:.2f} | "
                     f"{cell['torch auto']['ms']:.3g} | {cell['torch auto']['over_np_sort']:.2f} |")
    return lines


def _memory_section(res) -> list[str]:
    rows = res["memory"]
    lines = ["## Peak extra memory", "",
             "Peak memory of one `lmp_weights` call above what was held before it, output included, over the input's",
             "size: NumPy by `tracemalloc`, Torch CPU by the peak resident set size of a child process (one thread;",
             "freed blocks are returned to the system, the peak is reset before each call). The shapes hold float32",
             "losses, an eighth zero and an eighth negative; the one-pool cases are all equal (the sampled bracket",
             "is a single value), a dozen tied levels, p near 1 (float32 computed in float64) and float16 (computed",
             "in float32). The selection path passes over blocks of 2^16 losses converted to the work dtype and",
             "keeps the losses inside its bracket (p = 1) or the smaller side of it (at most about half the pool,",
             "in the input's dtype); the sort",
             "path holds a sorted copy of a chunk of pools in the input's dtype and one block's temporaries (float64",
             "where it counts every loss).", "",
             "| case | dtype | pools x n | p | method | NumPy | Torch CPU |", "|---|---|---|---:|---|---:|---:|"]
    torch_rows = {(r["shape"], r["p"], r["method"]): r["ratio"] for r in rows if r["lib"] == "torch"}
    for r in (r for r in rows if r["lib"] == "numpy"):
        t = torch_rows.get((r["shape"], r["p"], r["method"]))
        lines.append(f"| {r['shape']} | {r['dtype']} | {r['pools']} x {r['n']} | {r['p']:g} | {r['method']} | "
                     f"{r['ratio']:.2f} | " + ("-" if t is None else f"{t:.2f}") + " |")
    return lines + [""]


def _plot(res, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cpu = [r for r in res["cpu"] if r["dtype"] == "float32"]
    ps = (1.0, 1.7, math.inf)
    with plt.rc_context({"font.size": 15, "axes.titlesize": 16, "legend.fontsize": 13, "lines.linewidth": 2.2}):
        fig, axes = plt.subplots(1, len(ps), figsize=(14, 5.2), sharey=True)
        for ax, p in zip(axes, ps):
            for name, style in [("np.sort", "k--"), ("np.partition", "k:"), ("np.power", "C7-."), ("np.sum", "k-."),
                                ("numpy auto", "C0-o"), ("torch auto", "C3-s")]:
                pts = sorted((r["n"], r["ms"]) for r in cpu if r["p"] == p and r["contender"] == name)
                if pts:
                    ax.loglog([a for a, _ in pts], [b for _, b in pts], style, label=name, ms=6)
            ax.set_title(f"p = {p:g}")
            ax.set_xlabel("losses in the pool")
            ax.grid(True, which="major", alpha=0.3)
        axes[0].set_ylabel("median ms (float32, one pool)")
        axes[0].legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return True


def _numba_section(res) -> list[str]:
    """The solvers with the fast extra's loops against plain NumPy, in the same rounds (where numba ran)."""
    off = ", numba off"
    pairs = [(f"one pool of 2^{int(math.log2(r['n']))} {r['dtype']}", r) for r in res["cpu"] if r["n"] >= 2**17]
    pairs += [(f"{r['pools']} pools of 2^{int(math.log2(r['n']))} float32", r) for r in res["batched"]]
    rows = []
    for case, r in pairs:
        if r["contender"].endswith(off):
            name = r["contender"][: -len(off)]
            on = next((o["ms"] for c, o in pairs if c == case and o["p"] == r["p"] and o["contender"] == name), None)
            if on is not None:
                rows.append(f"| {case} | {r['p']:g} | {name} | {on:.3g} | {r['ms']:.3g} | {r['ms'] / on:.2f} |")
    if not rows:
        return ["## The fast extra's compiled loops", "",
                "numba is not installed (or `LMP_THEORY_NUMBA=0`) in this run: every figure is plain NumPy.", ""]
    return ["## The fast extra's compiled loops (median ms)", "",
            "With numba installed (`pip install \"lmp-theory[fast]\"`), these passes of the NumPy solvers are compiled",
            "(`solvers._numba_loops`): p = inf's weights; p = 1's bracket pass and weights; and at 1 < p < inf the",
            "selection path's first pass around NumPy's power (ratios, kept losses, power sum) and its count of the",
            "capped losses among those kept (one sweep over them, sorted). The passes check the losses finite as they",
            "read them. Each row times the same call with them and with plain NumPy",
            "(`LMP_THEORY_NUMBA=0`), in the same rounds.", "",
            "| case | p | method | with the loops | plain NumPy | speed-up |", "|---|---:|---|---:|---:|---:|"] + rows + [""]


def _compiled_section(res) -> list[str]:
    rows = res.get("compiled") or []
    if not rows:
        return []
    lines = ["## Compiled kernels: what a fused first pass would buy (p = 1.7, one float32 pool, median ms)", "",
             "At 1 < p < inf most of the selection path's time is its first pass (power sum, powers, counts, kept",
             "losses: about ten NumPy passes per block). Here it is timed against the same pass fused into one",
             "loop, by `torch.compile` (inductor: C++ on CPU, with Torch, nothing to install) and by numba",
             "(`fastmath`; the fast extra, about 210 MB with llvmlite, when it is installed). Neither fused pass",
             "is faster here: their powers are scalar. The solvers' compiled pass (above) therefore keeps NumPy's",
             "power and compiles what is around it.", "",
             "| pass | ms | / NumPy's pass | compile s |", "|---|---:|---:|---:|"]
    lines += [f"| {r['contender']} | {r['ms']:.3g} | {r['over_numpy']:.2f} | "
              f"{'' if math.isnan(r['compile_s']) else format(r['compile_s'], '.2g')} |" for r in rows]
    if not any(r["contender"].startswith("numba") for r in rows):
        lines += ["", "numba is not installed in this run (`pip install numba`)."]
    return lines + [""]


def write_report(res, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = out.with_suffix(".png")
    has_plot = _plot(res, plot_path)
    lines = ["# Benchmarks", "",
             "Produced by `python benchmarks/run.py` (the whole suite, one process). Every figure is a median over",
             "repeats in which all contenders of a configuration ran back to back, and every comparison is a ratio",
             "measured in the same run, so a busy machine slows both sides alike. Losses: exponential, a quarter of",
             "them scaled by 1e-8; the paper's parameters with ratio 0.1.", "",
             f"**Machine:** {res['machine']}", ""]
    if res.get("quick"):
        lines += ["*Quick run (small sizes): the targets below need the full suite.*", ""]
    targets = _targets(res)
    if targets:
        lines += ["## Targets (float32, one pool of 2^21 unless said)", "", "| target | measured | figure | met |",
                  "|---|---|---:|:---:|"]
        lines += [f"| {t} | {how} | {fig:.2f} | {'yes' if fig <= lim else '**no**'} |" for t, how, fig, lim in targets]
        lines.append("")
        fresh = _ms(res["cpu"], n=TARGET_N, dtype="float32", p=math.inf, contender="np.full_like")
        total = _ms(res["cpu"], n=TARGET_N, dtype="float32", p=math.inf, contender="np.sum")
        if fresh and total:
            lines += [f"A fresh output written once (`np.full_like`, no reading) takes {fresh / total:.2f} x `np.sum` in",
                      "this run: every call that returns weights pays it, and p = inf does nothing else but check and",
                      "read the losses once.", ""]
    if not res["gpu"]:
        lines += ["GPU: no CUDA device in this run; `python benchmarks/run.py` on a CUDA machine adds the GPU rows",
                  "(weights for 8 x 2^21 against `torch.sort`, `LossMaxPooling` against `nn.CrossEntropyLoss`).", ""]
    lines += ["**Reading the figures.** `auto` is the default: the selection path for pools of 16,384 losses and",
              "more (a sampled bracket; one pass that keeps the losses inside it at p = 1, or the smaller side of it",
              "and a power sum for p > 1; one pass that writes the weights), the sort path below. `np.power` is one",
              "power pass `np.power(l, 0.7)`, the least a `p > 1` solver reads and computes; `p = 1.001` needs",
              "float64 work for float32 input, and there the passes compute powers only for the losses whose",
              "powers count (the rest are below the sum's rounding or round to a zero weight). Where the machine",
              "line names numba, a few passes run as the fast extra's compiled loops (p = 1 and p = inf, and the",
              "selection path's first pass and count at 1 < p < inf; plain NumPy against them below); the rest is NumPy",
              "(and Torch). Ratios to",
              "`np.sort` depend on the CPU: with AVX-512 (see",
              "the machine line) NumPy sorts floats with vectorised kernels (x86-simd-sort).", ""]
    if has_plot:
        lines += [f"![log-log timings]({plot_path.name})", ""]
    lines += _growth(res)
    lines += ["## One pool, CPU (median ms; ratio to np.sort of the same array)", "",
              "| n | dtype | p | contender | ms | / np.sort |", "|---:|---|---:|---|---:|---:|"]
    lines += [f"| 2^{int(math.log2(r['n']))} | {r['dtype']} | {r['p']:g} | {r['contender']} | {r['ms']:.3g} | "
              f"{r['over_np_sort']:.2f} |" for r in res["cpu"]]
    batch = res["batched"]
    lines += ["", f"## Batched: {batch[0]['pools']} pools of 2^{int(math.log2(batch[0]['n']))} (float32, median ms)",
              "", "| p | contender | ms |", "|---:|---|---:|"]
    lines += [f"| {r['p']:g} | {r['contender']} | {r['ms']:.3g} |" for r in batch]
    lines += _shapes_section(res)
    lines += ["", "## What a user would otherwise write (one float32 pool, ratio 0.1, median ms)", "",
              "| contender | ms |", "|---|---:|"]
    lines += [f"| {r['contender']} | {r['ms']:.3g} |" for r in res["alternatives"]]
    lines += ["", "The top-k mean and OHEM are p = 1 with an integer count (no fractional part, no canonical ties);",
              "the bisection stops at 30 steps, short of the exact threshold.", "",
              "## LossMaxPooling against cross-entropy (CPU, forward and backward, median ms)", "",
              "| logits | nn.CrossEntropyLoss | LossMaxPooling(p=1.7, ratio=0.3) | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {r['shape']} | {r['ce_ms']:.3g} | {r['lmp_ms']:.3g} | {r['ratio']:.2f} |" for r in res["layer"]]
    lines += [""] + _numba_section(res) + _compiled_section(res) + _memory_section(res)
    lines += ["## The exact reference (cvxpy + Clarabel, refined and verified)", "",
              "| n | p | seconds | / NumPy closed form |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['n']} | {r['p']:g} | {r['seconds']:.3g} | {r['over_numpy']:.0f} |" for r in res["cvxpy"]]
    if res["gpu"]:
        lines += ["", "## GPU", "", "| what | ms | ratio | baseline |", "|---|---:|---:|---|"]
        lines += [f"| {r['what']} | {r['ms']:.3g} | {r['ratio']:.2f} | {r['baseline']} |" for r in res["gpu"]]
    for appended in ("distributed.md", "kit_isolation.md"):  # by benchmarks/distributed.py, kit_isolation.py
        section = Path(__file__).with_name(appended)
        if section.exists():
            lines += ["", section.read_text().rstrip()]
    out.write_text("\n".join(lines) + "\n")
