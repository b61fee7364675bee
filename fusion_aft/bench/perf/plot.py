"""The figure ``perf.png``: one panel per section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot(report: dict[str, Any], path: Path) -> None:
    """A 2×3 figure of the five sections (ratios against their targets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sec = report["sections"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = axes[0, 0]
    if "cases" in sec.get("overhead", {}):
        cases = sec["overhead"]["cases"]
        ax.bar(
            [c["name"] for c in cases],
            [c["ratio"] for c in cases],
            color=["tab:green" if c["pass"] else "tab:red" for c in cases],
        )
        for i, c in enumerate(cases):
            ax.hlines(float(c["target"].split()[-1]), i - 0.4, i + 0.4, colors="k", linestyles="--")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylim(0.8, max(1.2, max(c["ratio"] for c in cases) + 0.05))
        ax.tick_params(axis="x", rotation=20)
    ax.set_title("1. step time AFT / STL (dashed: target)")
    ax = axes[0, 1]
    if "cases" in sec.get("regulariser", {}):
        cases = sec["regulariser"]["cases"]
        x = np.arange(len(cases))
        ax.bar(x - 0.2, [c["reference_ms"] for c in cases], 0.4, label="straightforward")
        ax.bar(x + 0.2, [c["ours_ms"] for c in cases], 0.4, label="fusion-aft")
        ax.set_xticks(x, [f"dψ={c['teacher_dim']}" for c in cases])
        ax.set_yscale("log")
        ax.set_ylabel("ms, forward + backward")
        ax.legend()
        b = cases[0]["batch"]
        ax.set_title(f"2. regulariser, B={b}, dφ={cases[0]['student_dim']}")
    ax = axes[0, 2]
    if "cases" in sec.get("extraction", {}):
        cases = sec["extraction"]["cases"]
        ax.bar(
            [c["teacher"].split("?")[0] for c in cases],
            [c["ratio"] for c in cases],
            color=["tab:green" if c["pass"] else "tab:red" for c in cases],
        )
        ax.axhline(0.9, color="k", ls="--")
        ax.set_ylim(0, 1.1)
    ax.set_title("3. extract rows/s ÷ bare forward rows/s")
    ax = axes[1, 0]
    if "runs" in sec.get("memory", {}):
        m = sec["memory"]
        names = ["none", "ours", "ram"]
        vals = [m["runs"][k]["peak_rss_mib"] for k in names]
        labels = ["no bank", "fusion-aft (on disk)", "bank in RAM"]
        ax.bar(labels, vals, color=["grey", "tab:green", "tab:red"])
        ax.axhline(vals[0] + 1024, color="k", ls="--", label="target: no bank + 1 GiB")
        ax.set_ylabel("peak RSS (MiB)")
        ax.legend()
        ax.set_title(f"4. memory, {m['bank_gib']:.2f} GiB bank")
    ax = axes[1, 1]
    if "rows" in sec.get("scaling", {}):
        s = sec["scaling"]
        ax.plot(s["rows"], s["lookup_ms"], "o-", label="rows(128 ids)")
        ax.plot(s["rows"], s["step_ms"], "s-", label="AFT step (MLP)")
        ax.set_xscale("log")
        ax.set_ylim(0, max(s["step_ms"]) * 1.3)
        ax.set_xlabel("bank rows")
        ax.set_ylabel("ms")
        ax.legend()
    ax.set_title("5. lookup and step time vs bank size")
    ax = axes[1, 2]
    if "rows" in sec.get("scaling", {}):
        s = sec["scaling"]
        ax.plot(s["rows"], s["open_s"], "o-", label="open")
        ax.plot(s["rows"], s["index_build_s"], "s-", label="id index build")
        ax.plot(s["rows"], s["verify_all_chunks_s"], "^-", label="checksum of every chunk")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bank rows")
        ax.set_ylabel("s")
        ax.legend()
    ax.set_title("5. open / index / checksum time vs bank size")
    m = report["machine"]
    fig.suptitle(
        f"fusion-aft perf · {m['cpu_model']} · {m['cpu_cores']} cores · torch "
        f"{report['versions'].get('torch')} · {report['date'][:10]}" + (" · QUICK" if report["quick"] else "")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
