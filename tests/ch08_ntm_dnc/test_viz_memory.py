"""seqmem.viz's figures of chapter 8: heat maps of memories and links, bar charts of weightings.

Pinned here: the heat map shows the array as it is printed (row 0 at the top, no transpose), with
one label per cell holding its formatted value (a rounded negative zero written as zero) in a
colour readable on its cell, the tick labels and colour scale asked for; the bar charts draw one
panel per weighting with one bar per slot at the weighting's heights, the focus marked, a shared
range covering [0, 1] and negative similarities; bad shapes and axis counts say what was expected.
"""
import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from seqmem import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_heatmap_shows_the_array_as_printed_with_every_value():
    values = np.array([[0.0, 0.25, 1.0], [0.5, -0.0001, 0.75]])  # (rows, columns)
    ax = viz.plot_heatmap(values, vmin=0, vmax=1, title="L", xlabel="j", ylabel="i",
                          yticklabels=["a", "b"])
    image = ax.get_images()[0]
    np.testing.assert_array_equal(image.get_array(), values)  # no transpose
    assert image.origin == "upper"  # row 0 at the top, as a matrix is printed
    assert image.get_clim() == (0, 1)
    texts = {(t.get_position()[1], t.get_position()[0]): t for t in ax.texts}  # (row, column)
    assert len(texts) == values.size
    assert texts[(0, 1)].get_text() == "0.25" and texts[(1, 2)].get_text() == "0.75"
    assert texts[(1, 1)].get_text() == "0.00"  # a rounded -0.0001 is not "-0.00"
    # dark cells (low values in viridis) get white text, light ones black
    assert to_rgba(texts[(0, 0)].get_color()) == to_rgba("white")
    assert to_rgba(texts[(0, 2)].get_color()) == to_rgba("black")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert ax.get_title() == "L" and ax.get_xlabel() == "j" and ax.get_ylabel() == "i"


def test_heatmap_takes_tensors_formats_and_a_colour_bar():
    fig, ax = plt.subplots()
    out = viz.plot_heatmap(torch.tensor([[1.0, -2.0]]), ax=ax, fmt=".0f", cmap="coolwarm",
                           colorbar=True, annotate=True)
    assert out is ax
    assert [t.get_text() for t in ax.texts] == ["1", "-2"]
    assert ax.get_images()[0].get_clim() == (-2.0, 1.0)  # the values' range by default
    assert len(fig.axes) == 2  # the heat map and its colour bar
    quiet = viz.plot_heatmap(np.eye(2), annotate=False)
    assert not quiet.texts


def test_heatmap_rejects_what_is_not_a_matrix():
    with pytest.raises(ValueError, match=r"2-D \(rows, columns\) array, got shape \(3,\)"):
        viz.plot_heatmap(np.zeros(3))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3\)"):
        viz.plot_heatmap(np.zeros((1, 2, 3)))


def test_weightings_draw_one_panel_per_stage_and_one_bar_per_slot():
    K = np.array([-0.5, 0.9, 0.2, 0.0])  # similarities may be negative
    w = np.array([0.1, 0.7, 0.1, 0.1])
    flat = np.full(4, 0.25)
    axes = viz.plot_weightings({"K": K, "w": w, "uniform": torch.tensor(flat)})
    assert len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["K", "w", "uniform"]
    for ax, v in zip(axes, (K, w, flat)):
        bars = ax.patches
        assert len(bars) == 4
        np.testing.assert_allclose([b.get_height() for b in bars], v)
        assert [t.get_text() for t in ax.texts] == [format(x, ".2f") for x in v]
        low, high = ax.get_ylim()
        assert low <= -0.5 and high >= 1.0  # a shared range: [0, 1] and the negative similarity
    focus, other = to_rgba("C1"), to_rgba("C0")
    assert [b.get_facecolor() for b in axes[1].patches] == [other, focus, other, other]
    assert all(b.get_facecolor() == other for b in axes[2].patches)  # a flat weighting: no focus


def test_weightings_use_the_axes_given():
    fig, grid = plt.subplots(2, 2)
    out = viz.plot_weightings({f"w{i}": np.eye(3)[i % 3] for i in range(4)}, axes=grid.flatten())
    assert list(out) == list(grid.flatten())
    assert all(len(ax.patches) == 3 for ax in grid.flatten())


def test_weightings_say_what_was_expected():
    with pytest.raises(ValueError, match="at least one weighting"):
        viz.plot_weightings({})
    with pytest.raises(ValueError, match=r"one vector of N = 3 values; 'b' has shape \(4,\)"):
        viz.plot_weightings({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match=r"one vector of N = 3 values; 'b' has shape \(1, 3\)"):
        viz.plot_weightings({"a": np.zeros(3), "b": np.zeros((1, 3))})
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="got 3 axes for 2 weightings"):
        viz.plot_weightings({"a": np.zeros(3), "b": np.zeros(3)}, axes=axes)
