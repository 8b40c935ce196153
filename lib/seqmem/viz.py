"""Figures for the chapters: the only module of seqmem that draws.

Every function takes an optional matplotlib ``ax`` and returns it, so a notebook can place several
plots in one figure. matplotlib is imported when a function is called, never at import time.
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_history", "plot_sequence", "plot_heatmap", "plot_weightings", "plot_halting", "plot_augmentations",
           "plot_program",
           "use_cjk_font", "CJK_FONTS"]

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


def plot_halting(h, p, epsilon: float = 0.01, ax=None):
    """One input step of ACT for one example: the halting units, their running sum and the weights.

    ``h``: the halting units $h^n$ of the ponder steps computed, n = 1 ... (M values or fewer);
    ``p``: the halting probabilities $p^n$ (``act.ACTStep.halting`` of the example: $h^n$ before
    $N$, the remainder $R$ at $N$, zero after). Draws $h^n$ (light bars) and $p^n$ (dark bars) by
    ponder step, the running sum of $h^n$ (a line) against the threshold $1 - \\epsilon$, and marks
    $N$, $R$ and the ponder cost $N + R$. Returns the axes.
    """
    h, p = np.asarray(h, dtype=float), np.asarray(p, dtype=float)
    if h.ndim != 1 or p.ndim != 1 or len(h) < 1 or len(h) > len(p):
        raise ValueError(f"plot_halting expects h (n,) and p (M,) with 1 <= n <= M, got shapes {h.shape} and {p.shape}")
    if not np.isclose(p.sum(), 1.0, atol=1e-4) or (p < 0).any():
        raise ValueError(f"p must be a distribution over the ponder steps (non-negative, summing to one), "
                         f"got a sum of {p.sum():.4f}")
    ax = _axes(ax, figsize=(6, 3))
    N = int(np.flatnonzero(p > 0)[-1]) + 1  # the last step with weight
    R = p[N - 1]
    steps = np.arange(1, len(p) + 1)
    ax.bar(steps[:len(h)] - 0.18, h, width=0.36, color="C0", alpha=0.45, label="halting unit $h^n$")
    ax.bar(steps + 0.18, p, width=0.36, color="C0", label="halting probability $p^n$")
    ax.plot(steps[:len(h)], np.cumsum(h), "o-", color="C1", label="running sum of $h^n$")
    ax.axhline(1 - epsilon, color="grey", ls=":", lw=1, label="$1 - \\epsilon$")
    ax.annotate(f"R = {R:.2f}", (N + 0.18, R), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set(xlabel="ponder step n", ylim=(0, max(1.15, float(np.cumsum(h).max()) + 0.1)), xticks=steps,
           title=f"N = {N}, ponder cost N + R = {N + R:.2f}")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def plot_program(alpha_op, alpha_col, operations, columns, axes=None):
    """A Neural Programmer's choices for one question: the weight of every operation (left) and every
    column (right) at each program step, as two heat maps with the chosen (argmax) cell outlined.

    ``alpha_op`` (T, O) and ``alpha_col`` (T, C) for one example (``ProgramOutput.alpha_op[b]``);
    ``operations`` (O names) and ``columns`` (C names) label the axes. Returns the two axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    a_op, a_col = np.asarray(alpha_op, dtype=float), np.asarray(alpha_col, dtype=float)
    if a_op.ndim != 2 or a_col.ndim != 2 or a_op.shape[0] != a_col.shape[0]:
        raise ValueError(f"plot_program expects alpha_op (T, O) and alpha_col (T, C) with the same T, got "
                         f"{a_op.shape} and {a_col.shape}")
    if a_op.shape[1] != len(operations) or a_col.shape[1] != len(columns):
        raise ValueError(f"{a_op.shape[1]} operations and {a_col.shape[1]} columns need as many names, got "
                         f"{len(operations)} and {len(columns)}")
    if axes is None:
        ratios = [len(operations), 2 + len(columns)]
        _, axes = plt.subplots(1, 2, figsize=(8, 2.6), gridspec_kw={"width_ratios": ratios})
    T = a_op.shape[0]
    for ax, weights, names, title in ((axes[0], a_op, operations, "operation"), (axes[1], a_col, columns, "column")):
        ax.imshow(weights, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for t, j in enumerate(weights.argmax(axis=1)):
            ax.add_patch(Rectangle((j - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="C1", lw=2))
        ax.set(xticks=range(len(names)), yticks=range(T), yticklabels=[f"step {t + 1}" for t in range(T)],
               title=f"{title} weights")
        ax.set_xticklabels(names, rotation=60, fontsize=8)
    return axes


def plot_augmentations(ax=None):
    """The four ways of augmenting an RNN in one picture: an external memory, attention over the
    input, adaptive computation time and a neural programmer, each a small sketch around the RNN
    cell with a one-line caption. Returns the axes (their four titles are the captions' names)."""
    from matplotlib.patches import FancyArrowPatch, Rectangle

    ax = _axes(ax, figsize=(10, 3.2))
    ax.set(xlim=(0, 4), ylim=(0, 1), xticks=[], yticks=[])
    for spine in ax.spines.values():
        spine.set_visible(False)

    def box(x, y, w, h, text="", color="C0", alpha=0.25):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=color, alpha=alpha, edgecolor=color))
        if text:
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7)

    def arrow(a, b, color="black", lw=0.8, alpha=1.0):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=8, color=color, lw=lw, alpha=alpha))

    panels = [("Neural Turing Machine", "reads and writes an external memory"),
              ("Attentional interface", "focuses on parts of its input"),
              ("Adaptive computation time", "varies its computation per step"),
              ("Neural programmer", "calls operations, building a program")]
    for k, (name, caption) in enumerate(panels):
        x0 = k + 0.08
        ax.text(k + 0.5, 0.97, name, ha="center", va="top", fontsize=9, weight="bold")
        ax.text(k + 0.5, 0.04, caption, ha="center", va="bottom", fontsize=7)
        box(x0 + 0.27, 0.42, 0.3, 0.16, "RNN")
        if k == 0:  # memory: a grid of slots, a read and a write arrow
            for i in range(6):
                box(x0 + 0.05 + 0.12 * i, 0.72, 0.1, 0.1, color="C2")
            arrow((x0 + 0.37, 0.58), (x0 + 0.3, 0.72), "C2")
            arrow((x0 + 0.5, 0.72), (x0 + 0.47, 0.58), "C2")
        elif k == 1:  # attention: lines from the inputs, the one attended to heavy
            for i in range(6):
                box(x0 + 0.05 + 0.12 * i, 0.16, 0.1, 0.1, color="C1", alpha=0.6 if i == 2 else 0.25)
                heavy = i == 2
                arrow((x0 + 0.1 + 0.12 * i, 0.26), (x0 + 0.42, 0.42), "C1", lw=2.5 if heavy else 0.6,
                      alpha=1.0 if heavy else 0.4)
        elif k == 2:  # ACT: the cell run again on the same input, n = 1, 2, 3, weighted
            for i in range(3):
                box(x0 + 0.27 + 0.05 * i, 0.62 + 0.08 * i, 0.3, 0.07, f"n = {i + 1}", color="C3",
                    alpha=0.15 + 0.15 * i)
            arrow((x0 + 0.42, 0.58), (x0 + 0.42, 0.62), "C3")
            arrow((x0 + 0.42, 0.2), (x0 + 0.42, 0.42))
        else:  # the programmer: operations the controller weighs
            for i, op in enumerate(("sum", "count", "greater", "print")):
                box(x0 + 0.02 + 0.21 * i, 0.72, 0.19, 0.1, op, color="C4")
                arrow((x0 + 0.42, 0.58), (x0 + 0.11 + 0.21 * i, 0.72), "C4")
    return ax
