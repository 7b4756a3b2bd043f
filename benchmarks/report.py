"""Turn the benchmark results into docs/benchmarks.md and a log-log plot beside it."""

from __future__ import annotations

import math
from pathlib import Path

TARGET_N = 2**21


def _row(rows, **match):
    for r in rows:
        if all(r[k] == v for k, v in match.items()):
            return r
    return None


def _targets(res) -> list[tuple[str, str, float, float]]:
    """(target, measured as, figure, limit) for each target of the issue that this run can measure."""
    cpu, out = res["cpu"], []
    n = max(r["n"] for r in cpu)
    if n < TARGET_N:
        return out
    for p, limit in ((1.0, 0.6), (math.inf, 0.6), (1.7, 2.0)):
        r = _row(cpu, n=TARGET_N, dtype="float32", p=p, contender="numpy select")
        out.append((f"NumPy, p = {p:g}: <= {limit} x np.sort", "numpy select / np.sort", r["over_np_sort"], limit))
    for p in (1.0, 1.7, math.inf):
        t = _row(cpu, n=TARGET_N, dtype="float32", p=p, contender="torch select")
        a = _row(cpu, n=TARGET_N, dtype="float32", p=p, contender="numpy select")
        out.append((f"Torch CPU, p = {p:g}: <= 1.5 x our NumPy", "torch select / numpy select", t["ms"] / a["ms"], 1.5))
    for r in res["batched"]:
        out.append((f"{r['lib']} 8 pools of 2^21, p = {r['p']:g}: <= 9 x one pool", "8 pools / 1 pool", r["ratio"], 9.0))
    for lib, how in (("numpy", "tracemalloc"), ("torch", "peak RSS")):
        rows = [r for r in res["memory"] if r["lib"] == lib]
        if rows:
            worst = max(rows, key=lambda r: r["ratio"])
            out.append((f"{lib} peak extra memory, every shape and method: <= 4 x the input",
                        f"{how}, worst: {worst['shape']}, {worst['method']}, p = {worst['p']:g}", worst["ratio"], 4.0))
    for r in res["gpu"]:
        limit = 1.5 if "LossMaxPooling" in r["what"] else 1.0
        out.append((f"GPU {r['what']}: <= {limit} x {r['baseline']}", f"/ {r['baseline']}", r["ratio"], limit))
    return out


def _backend_spread(batched) -> str:
    """How far apart this run's 8-pool times of NumPy and Torch are, in words (empty without both)."""
    times = {(r["lib"], r["p"]): r["batch_ms"] for r in batched}
    pairs = [(times[("numpy", p)], times[("torch", p)]) for lib, p in times if lib == "numpy" and ("torch", p) in times]
    if not pairs:
        return ""
    spread = max(max(a, b) / min(a, b) - 1.0 for a, b in pairs)
    return f" In this run the 8-pool times of NumPy and Torch are within {100 * spread:.0f} % of each other."


def _memory_section(res) -> list[str]:
    rows = res["memory"]
    total = rows[0]["pools"] * rows[0]["n"] * 4 / 2**20
    lines = ["", f"## Peak extra memory ({total:.3g} MB of float32 losses, an eighth zero and an eighth negative)", "",
             "Peak memory of one `lmp_weights` call above what was held before it, output included, over the input's",
             "size: NumPy by `tracemalloc`, Torch CPU by the peak resident set size of a child process (one thread;",
             "freed blocks are returned to the system, the peak is reset before each call). The sort path runs over",
             "chunks of pools (1/16 of the batch, at least 2^16 losses) and passes over each chunk in blocks of about",
             "2^16 losses: it holds the weights, a sorted copy of one chunk in the input's dtype and one block's",
             "float64 temporaries, so a forced `method=\"sort\"` on a single large pool is bounded like the other shapes (CPU",
             "tensors sort with the NumPy core: `torch.sort` alone would allocate int64 indices, 2 x a float32 pool).", "",
             "| shape | pools x n | p | method | NumPy | Torch CPU |", "|---|---|---:|---|---:|---:|"]
    torch_rows = {(r["shape"], r["p"], r["method"]): r["ratio"] for r in rows if r["lib"] == "torch"}
    for r in (r for r in rows if r["lib"] == "numpy"):
        t = torch_rows.get((r["shape"], r["p"], r["method"]))
        lines.append(f"| {r['shape']} | {r['pools']} x {r['n']} | {r['p']:g} | {r['method']} | {r['ratio']:.2f} | "
                     + ("-" if t is None else f"{t:.2f}") + " |")
    return lines


def _plot(res, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cpu = [r for r in res["cpu"] if r["dtype"] == "float32"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for ax, p in zip(axes, (1.0, 1.7, math.inf)):
        for name, style in [("np.sort", "k--"), ("np.partition", "k:"), ("np.sum", "k-."), ("torch.sort", "C7--"),
                            ("numpy sort", "C0-o"), ("numpy select", "C1-o"), ("torch sort", "C2-s"),
                            ("torch select", "C3-s")]:
            pts = sorted((r["n"], r["ms"]) for r in cpu if r["p"] == p and r["contender"] == name)
            if pts:
                ax.loglog([a for a, _ in pts], [b for _, b in pts], style, label=name, ms=4)
        ax.set_title(f"p = {p:g}, float32, ratio {0.1}")
        ax.set_xlabel("pool size n")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median time (ms)")
    axes[-1].legend(fontsize=8, loc="upper left")
    fig.suptitle("Loss max-pooling weights vs the floors (one pool, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(res, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = out.with_suffix(".png")
    has_plot = _plot(res, plot_path)
    lines = ["# Benchmarks", "",
             "Produced by `python benchmarks/run.py` (the whole suite, one process). Every figure is a median over",
             "repeats in which all contenders of a configuration ran back to back, and every comparison is a ratio",
             "measured in the same run. Losses: exponential, a quarter of them scaled by 1e-8; ratio 0.1.", "",
             f"**Machine:** {res['machine']}", ""]
    if res.get("quick"):
        lines += ["*Quick run (small sizes): the targets below need the full suite.*", ""]
    targets = _targets(res)
    if targets:
        lines += ["## Targets (float32, n = 2^21, this machine)", "", "| target | measured | figure | met |",
                  "|---|---|---:|:---:|"]
        lines += [f"| {t} | {how} | {fig:.2f} | {'yes' if fig <= lim else '**no**'} |" for t, how, fig, lim in targets]
        lines.append("")
    if not res["gpu"]:
        lines += ["GPU: no CUDA device in this run; `python benchmarks/run.py` on a CUDA machine adds the GPU rows",
                  "(weights for 8 x 2^21 against `torch.sort`, `LossMaxPooling` against `nn.CrossEntropyLoss`).", ""]
    lines += ["**Reading the figures.** `select` is the expected-O(n) path that `method=\"auto\"` uses for pools of",
              "16,384 losses and more; `sort` is the O(n log n) closed form. Targets compare the select path."
              " Ratios to `np.sort` depend on the CPU: with AVX-512 (see the machine line) NumPy sorts floats with"
              " vectorised kernels (x86-simd-sort), several times faster than without, so compare them only between"
              " runs on like CPUs."
              + _backend_spread(res["batched"]), ""]
    if has_plot:
        lines += [f"![log-log timings]({plot_path.name})", ""]
    lines += ["## One pool, CPU (median ms; ratios to np.sort and torch.sort of the same array)", "",
              "| n | dtype | p | contender | ms | / np.sort | / torch.sort |", "|---:|---|---:|---|---:|---:|---:|"]
    for r in res["cpu"]:
        lines.append(f"| 2^{int(math.log2(r['n']))} | {r['dtype']} | {r['p']:g} | {r['contender']} | {r['ms']:.3g} | "
                     f"{r['over_np_sort']:.2f} | {r['over_torch_sort']:.2f} |")
    lines += ["", "## Batched: 8 pools against one pool (float32, auto method)", "",
              "| library | p | 1 pool ms | 8 pools ms | ratio |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['lib']} | {r['p']:g} | {r['one_ms']:.3g} | {r['batch_ms']:.3g} | {r['ratio']:.2f} |"
              for r in res["batched"]]
    lines += _memory_section(res)
    lines += ["", "## The exact reference (cvxpy + Clarabel, refined and verified)", "",
              "| n | p | seconds | / NumPy closed form |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['n']} | {r['p']:g} | {r['seconds']:.3g} | {r['over_numpy']:.0f} |" for r in res["cvxpy"]]
    if res["gpu"]:
        lines += ["", "## GPU", "", "| what | ms | ratio | baseline |", "|---|---:|---:|---|"]
        lines += [f"| {r['what']} | {r['ms']:.3g} | {r['ratio']:.2f} | {r['baseline']} |" for r in res["gpu"]]
    distributed = Path(__file__).with_name("distributed.md")  # written by benchmarks/distributed.py
    if distributed.exists():
        lines += ["", distributed.read_text().rstrip()]
    out.write_text("\n".join(lines) + "\n")
