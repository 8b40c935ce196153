"""Figures: Chinese text draws with a real font, without missing-glyph warnings."""
import io
import warnings

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqmem import viz  # noqa: E402

CHINESE = "machine learning → 機器學習, 3012 → 三千零一十二"


def _draw_warnings(family) -> list[str]:
    with matplotlib.rc_context({"font.family": family}):
        fig, ax = plt.subplots()
        ax.set_title(CHINESE)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    return [str(w.message) for w in caught]


def test_without_a_cjk_font_matplotlib_misses_glyphs():
    # what use_cjk_font prevents: DejaVu Sans alone has no Chinese characters
    assert any("missing from font" in m for m in _draw_warnings(["DejaVu Sans"]))


def test_use_cjk_font_draws_chinese_without_warnings():
    with matplotlib.rc_context():
        name = viz.use_cjk_font()
        assert name in viz.CJK_FONTS
        family = list(matplotlib.rcParams["font.family"])
    assert family == ["DejaVu Sans", name]
    assert _draw_warnings(family) == []


def test_use_cjk_font_says_what_to_install(monkeypatch):
    monkeypatch.setattr(viz, "CJK_FONTS", ("No Such Font Anywhere",))
    with pytest.raises(RuntimeError, match="fonts-noto-cjk"):
        viz.use_cjk_font()
