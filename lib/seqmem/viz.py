"""Figures for the chapters: the only module of seqmem that draws.

Every function takes an optional matplotlib ``ax`` and returns it, so a notebook can place several
plots in one figure. matplotlib is imported when a function is called, never at import time.
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_history", "plot_sequence", "use_cjk_font", "CJK_FONTS"]

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
