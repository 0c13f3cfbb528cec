"""The comparison as a chart (matplotlib): requests per second and p99 per gateway and shape."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def chart(data: dict, path: Path) -> None:
    summary = data["summary"]
    gateways = list(dict.fromkeys(key.split("/")[0] for key in summary))
    shapes = ["distinct", "identical"]
    colours = {
        "citygate": "#2b6cb0",
        "citygate-unshared": "#90cdf4",
        "hive-gateway": "#d69e2e",
        "apollo-gateway": "#718096",
        "grafbase": "#38a169",
    }
    small = data.get("small_query") or {}
    figure, axes = plt.subplots(1, 3 if "direct" in small else 2, figsize=(15 if "direct" in small else 11, 4.2))
    left, right = axes[0], axes[1]
    width = 0.8 / max(1, len(gateways))
    for index, gateway in enumerate(gateways):
        xs = [position + index * width for position in range(len(shapes))]
        rps = [summary.get(f"{gateway}/{shape}", {}).get("rps", 0) for shape in shapes]
        p99 = [summary.get(f"{gateway}/{shape}", {}).get("p99_ms", 0) for shape in shapes]
        left.bar(xs, rps, width, label=gateway, color=colours.get(gateway))
        right.bar(xs, p99, width, label=gateway, color=colours.get(gateway))
        for x, value in zip(xs, rps, strict=True):
            left.text(x, value, f"{value:.0f}", ha="center", va="bottom", fontsize=8)
    for axis, title in ((left, "requests per second (higher is better)"), (right, "p99 latency, ms (lower is better)")):
        axis.set_xticks([position + width * (len(gateways) - 1) / 2 for position in range(len(shapes))])
        axis.set_xticklabels(shapes)
        axis.set_title(title, fontsize=10)
    left.legend(fontsize=8)
    if "direct" in small:
        names = [name for name in small if name != "direct"]
        added = [small[name] - small["direct"] for name in names]
        axes[2].bar(names, added, color=[colours.get(name) for name in names])
        for x, value in enumerate(added):
            axes[2].text(x, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
        axes[2].set_title("small query: p50 added over calling the subgraph, ms", fontsize=10)
        axes[2].tick_params(axis="x", labelsize=8)
    figure.suptitle(
        f"Heavy nested query, {data['connections']} connections, {data['duration_s']} s x {data['rounds']} rounds, one core per gateway ({data['started']})",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
