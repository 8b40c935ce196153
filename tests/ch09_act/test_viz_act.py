"""seqmem.viz's figures of chapter 9: ACT's halting for one input step, the four augmentations."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqmem import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_halting_draws_the_units_the_weights_their_sum_and_the_cost():
    h = np.array([0.3, 0.4, 0.5])  # sums past 0.99 at the third step: N = 3, R = 0.3
    p = np.array([0.3, 0.4, 0.3, 0.0, 0.0])
    ax = viz.plot_halting(h, p, epsilon=0.01)
    bars = [patch.get_height() for patch in ax.patches]
    np.testing.assert_allclose(bars, [*h, *p])  # h^n, then p^n for every ponder step
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), np.cumsum(h))
    assert ax.get_lines()[1].get_ydata()[0] == pytest.approx(0.99)  # the threshold
    assert ax.get_title() == "N = 3, ponder cost N + R = 3.30"
    assert any(t.get_text() == "R = 0.30" for t in ax.texts)


def test_halting_refuses_what_is_not_a_halting_distribution():
    with pytest.raises(ValueError, match="must be a distribution"):
        viz.plot_halting([0.5, 0.6], [0.5, 0.6])
    with pytest.raises(ValueError, match="expects h \\(n,\\) and p \\(M,\\)"):
        viz.plot_halting([0.2, 0.2, 0.2], [0.5, 0.5])


def test_the_augmentations_picture_has_four_named_panels():
    ax = viz.plot_augmentations()
    texts = [t.get_text() for t in ax.texts]
    for name in ("Neural Turing Machine", "Attentional interface", "Adaptive computation time",
                 "Neural programmer"):
        assert name in texts
    assert "RNN" in texts and texts.count("RNN") == 4  # the cell at the centre of each sketch
    assert {"sum", "count", "greater", "print"} <= set(texts)
    assert {"n = 1", "n = 2", "n = 3"} <= set(texts)  # ACT's ponder steps
    widths = [p.get_linewidth() for p in ax.patches]
    assert max(widths) >= 2.5  # the attended input's arrow stands out
    assert len(ax.patches) > 20


def test_the_program_picture_shows_every_steps_weights_and_outlines_the_choices():
    alpha_op = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # (T, O) = (2, 3)
    alpha_col = np.array([[0.4, 0.6], [0.9, 0.1]])
    left, right = viz.plot_program(alpha_op, alpha_col, ["sum", "count", "greater"], ["pears", "figs"])
    np.testing.assert_allclose(left.images[0].get_array(), alpha_op)
    np.testing.assert_allclose(right.images[0].get_array(), alpha_col)
    assert [t.get_text() for t in left.get_xticklabels()] == ["sum", "count", "greater"]
    assert [t.get_text() for t in left.get_yticklabels()] == ["step 1", "step 2"]
    corners = [(p.get_x(), p.get_y()) for p in left.patches]
    assert corners == [(-0.5, -0.5), (1.5, 0.5)]  # sum at step 1, greater at step 2
    assert [(p.get_x(), p.get_y()) for p in right.patches] == [(0.5, -0.5), (-0.5, 0.5)]


def test_the_program_picture_refuses_mismatched_names_and_steps():
    with pytest.raises(ValueError, match="the same T"):
        viz.plot_program(np.ones((2, 3)) / 3, np.ones((3, 2)) / 2, ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="need as many names"):
        viz.plot_program(np.ones((2, 3)) / 3, np.ones((2, 2)) / 2, ["a", "b"], ["x", "y"])
