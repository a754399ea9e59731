"""`SparsityReport.plot`: the report as a bar chart (matplotlib, optional)."""

KINDS = ("auto", "sparsity", "channels")


def chosen_kind(report, kind):
    """`"sparsity"` or `"channels"` for `kind` (see `SparsityReport.plot`)."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}.")
    has_channels = any("kept" in r.get("channels", {}) for r in report["layers"].values())
    if kind == "auto":
        channel_pruned = any(r.get("structure") == "channel" for r in report["layers"].values())
        return "channels" if channel_pruned and has_channels else "sparsity"
    if kind == "channels" and not has_channels:
        raise ValueError(
            "kind='channels' needs output-channel counts, which the report has only for "
            "the Dense/conv layers of a Sequential or Functional model. Use "
            "kind='sparsity' for this model.")
    return kind


def plot(report, path=None, kind="auto", title=None):
    """Draws `report`; see `SparsityReport.plot`."""
    kind = chosen_kind(report, kind)
    try:
        import matplotlib  # noqa: PLC0415
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            "SparsityReport.plot needs matplotlib: pip install matplotlib (or the "
            '"experiments" extra: pip install "keras-progprune[experiments]").') from e
    if path is not None:
        matplotlib.use("Agg")  # no screen needed to write a file
    layers = report["layers"]
    names = [n for n, r in layers.items()
             if kind == "sparsity" or "kept" in r.get("channels", {})]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2.0), 4.0))
    positions = range(len(names))
    if kind == "sparsity":
        values = [layers[n]["sparsity"] for n in names]
        colors = ["tab:blue" if layers[n]["pruned"] else "tab:gray" for n in names]
        ax.bar(positions, values, color=colors)
        ax.set_ylim(0, 1)
        ax.set_ylabel("sparsity (fraction of zeros)")
        pruned, whole = report["pruned"]["sparsity"], report["model"]["sparsity"]
        default_title = f"Sparsity: {pruned:.1%} over pruned layers, {whole:.1%} over the model"
    else:
        kept = [layers[n]["channels"]["kept"] for n in names]
        total = [layers[n]["channels"]["total"] for n in names]
        ax.bar(positions, total, color="lightgray", label="channels")
        ax.bar(positions, kept, color="tab:blue", label="kept by shrink")
        ax.set_ylabel("output channels")
        ax.legend()
        macs = report.get("macs")
        default_title = "Channels kept per layer" + (
            f" (MACs after shrink: {macs['shrunk'] / max(macs['dense'], 1):.1%})" if macs else "")
    ax.set_xticks(list(positions))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_title(title or default_title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
