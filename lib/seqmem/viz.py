"""Figures for the chapters: the only module of seqmem that draws.

Every function takes an optional matplotlib ``ax`` and returns it, so a notebook can place several
plots in one figure. matplotlib is imported when a function is called, never at import time.
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_history", "plot_sequence", "plot_heatmap", "plot_weightings", "use_cjk_font", "CJK_FONTS"]

# Fonts with the Chinese characters of the lectures' examples (機器學習, 三千零一十二), best first:
# Debian's fonts-noto-cjk (which `make book` installs as root), then the usual ones of macOS and Windows.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK JP", "Source Han Sans SC",
             "WenQuanYi Zen Hei", "PingFang SC", "Heiti SC", "Microsoft YaHei", "SimHei")


def _axes(ax, figsize=(6, 3.5)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _installed_cjk_font() -> str | None:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in names:
            return name
    return None


def use_cjk_font() -> str:
    """Let every later figure write Chinese: a CJK font after matplotlib's default, per glyph.

    matplotlib (3.6 and later) falls back along ``font.family`` glyph by glyph, so Latin text keeps
    DejaVu Sans and a character DejaVu lacks comes from the first installed font of ``CJK_FONTS``.
    A font installed after matplotlib cached its list (``make book`` installs fonts-noto-cjk) is
    found by scanning the system's font folders once.

    Returns the CJK font's name; raises ``RuntimeError`` naming what to install if there is none
    (matplotlib would otherwise draw empty boxes and warn about missing glyphs).
    """
    import matplotlib
    from matplotlib import font_manager

    name = _installed_cjk_font()
    if name is None:
        for path in font_manager.findSystemFonts():
            if any(key in path for key in ("CJK", "wqy", "SourceHan", "PingFang", "msyh", "simhei")):
                font_manager.fontManager.addfont(path)
        name = _installed_cjk_font()
    if name is None:
        raise RuntimeError("no font with Chinese characters is installed; install one of "
                           f"{', '.join(CJK_FONTS)} (Debian/Ubuntu: apt-get install fonts-noto-cjk)")
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", name]
    return name


def plot_history(history, ax=None, label: str | None = None, window: int = 20, logy: bool = False):
    """Plot a training loss curve (``seqmem.fit``'s History, or a list of losses).

    The raw loss is drawn faintly and a moving average of ``window`` steps on top of it.
    """
    ax = _axes(ax)
    loss = np.asarray(getattr(history, "loss", history), dtype=float)
    steps = np.arange(1, len(loss) + 1)
    (line,) = ax.plot(steps, loss, alpha=0.25)
    if len(loss) >= window:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color=line.get_color(), label=label)
    elif label:
        line.set_label(label)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if label:
        ax.legend()
    return ax


def plot_sequence(values, ax=None, title: str | None = None, xlabel: str = "time step t", ylabel: str = "unit"):
    """Show a (T, H) array (hidden states, inputs, attention over time) as a heat map, time across."""
    ax = _axes(ax)
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"plot_sequence expects a (T, H) array, got shape {values.shape}")
    im = ax.imshow(values.T, aspect="auto", origin="lower", cmap="viridis")
    ax.figure.colorbar(im, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def _cell_text(value: float, fmt: str) -> str:
    """``value`` formatted, with a rounded negative zero ("-0.00") written as zero."""
    text = format(value, fmt)
    return format(0.0, fmt) if float(text) == 0 else text


def plot_heatmap(values, ax=None, title: str | None = None, xlabel: str | None = None,
                 ylabel: str | None = None, xticklabels=None, yticklabels=None, annotate: bool = True,
                 fmt: str = ".2f", vmin: float | None = None, vmax: float | None = None,
                 cmap: str = "viridis", colorbar: bool = False):
    """Show a 2-D array (rows, columns) as a heat map as it is printed: row 0 at the top.

    For the matrices of the memory chapters: a memory (N, W), a link matrix (N, N), usages or
    weightings over time (T, N). With ``annotate`` every cell carries its value (``fmt``), in
    white on dark cells and black on light ones. ``vmin``/``vmax`` fix the colour scale (weights:
    0 and 1); by default it spans the values.
    """
    ax = _axes(ax)
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"plot_heatmap expects a 2-D (rows, columns) array, got shape {values.shape}")
    rows, cols = values.shape
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols), range(cols) if xticklabels is None else xticklabels)
    ax.set_yticks(range(rows), range(rows) if yticklabels is None else yticklabels)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            dark = im.norm(v) < 0.5  # viridis is dark at the low end
            ax.text(j, i, _cell_text(v, fmt), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_weightings(weightings, axes=None, xlabel: str = "slot i", fmt: str = ".2f"):
    """Bar charts of weightings over the N slots of a memory, one panel per entry, side by side.

    ``weightings`` maps a panel's title to its N values (a weighting, or similarities in
    [-1, 1]); every panel shares the slots' axis and spans at least [0, 1], so the stages of an
    addressing pipeline compare at a glance. Each bar carries its value. ``axes``: as many
    matplotlib axes as panels (a new row of panels when None); returns them.
    """
    items = [(title, np.asarray(v, dtype=float)) for title, v in dict(weightings).items()]
    if not items:
        raise ValueError("plot_weightings needs at least one weighting")
    for title, v in items:
        if v.ndim != 1 or len(v) != len(items[0][1]):
            raise ValueError(f"every weighting must be one vector of N = {len(items[0][1])} values; "
                             f"{title!r} has shape {v.shape}")
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(items), figsize=(2.3 * len(items), 2.6), sharey=True, squeeze=False)
        axes = axes[0]
    if len(axes) != len(items):
        raise ValueError(f"plot_weightings got {len(axes)} axes for {len(items)} weightings")
    low = min(0.0, min(v.min() for _, v in items))
    high = max(1.0, max(v.max() for _, v in items))
    slots = np.arange(len(items[0][1]))
    for ax, (title, v) in zip(axes, items):
        top = (v == v.max()) & (v.max() > v.min())  # the focus in orange (none if flat)
        ax.bar(slots, v, color=np.where(top, "C1", "C0"))
        for i, value in enumerate(v):
            ax.text(i, max(value, 0.0) + 0.02 * (high - low), _cell_text(value, fmt), ha="center",
                    va="bottom", fontsize=6, rotation=90)
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set(ylim=(low, high + 0.25 * (high - low)), xticks=slots, xlabel=xlabel)
        ax.set_title(title, fontsize=9)
    return axes
