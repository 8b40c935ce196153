"""seqmem.tasks.scenes (chapter 5): scenes of coloured shapes with yes/no questions.

Pinned here: shapes and ranges; every answer and its relevant cells against the rule recomputed
from the objects and the question's words; the pixels of every cell against its object; yes and
no balanced, the templates spread, hard "no"s (the thing is there, elsewhere) present; the region
masks; seeds; devices; errors.
"""
import pytest
import torch

from helpers import gen
from seqmem.tasks import scenes
from seqmem.tasks.scenes import (QUESTION_KINDS, SCENE_COLORS, SCENE_REGIONS, SCENE_SHAPES, question_text,
                                 region_mask, scene_vocab, visual_questions)

COLORS = list(SCENE_COLORS)


def parse(words):
    color = next((w for w in words if w in SCENE_COLORS), None)
    shape = next(w for w in words if w in SCENE_SHAPES)
    region = next((w for w in words if w in SCENE_REGIONS), None)
    return color, shape, region


def matches(data, b, color, shape, region, grid=4):
    """The cells (G, G) whose object is of that colour (any if None) and shape, in the region (anywhere if None)."""
    code = data.objects[b]
    ok = code >= 0
    ok &= code % len(SCENE_SHAPES) == SCENE_SHAPES.index(shape)
    if color is not None:
        ok &= code // len(SCENE_SHAPES) == COLORS.index(color)
    if region is not None:
        ok &= region_mask(region, grid)
    return ok


def test_answers_follow_the_rule():
    data = visual_questions(600, generator=gen(0))
    assert data.images.shape == (600, 3, 32, 32) and data.relevant.shape == data.objects.shape == (600, 4, 4)
    assert data.images.min() >= 0 and data.images.max() <= 1
    for b in range(600):
        words = question_text(data, b).split()
        assert words[:3] == ["is", "there", "a"] and words[-1] == "?"
        color, shape, region = parse(words)
        kind = ("color shape" if region is None else "color shape region" if color else "shape region")
        assert QUESTION_KINDS[data.kinds[b]] == kind
        cells = matches(data, b, color, shape, region)
        assert int(data.answers[b]) == int(cells.any())
        assert torch.equal(data.relevant[b], cells)
        assert 2 <= int((data.objects[b] >= 0).sum()) <= 5


def test_pixels_show_the_objects():
    data = visual_questions(100, generator=gen(1))
    for b in range(100):
        for r in range(4):
            for c in range(4):
                patch = data.images[b, :, 8 * r:8 * r + 8, 8 * c:8 * c + 8]  # (3, 8, 8)
                code = int(data.objects[b, r, c])
                lit = patch.sum(0) > 0
                if code < 0:
                    assert not lit.any()
                    continue
                rgb = torch.tensor(SCENE_COLORS[COLORS[code // 3]])
                assert 12 <= int(lit.sum()) <= 36  # a shape of 5 or 6 pixels a side
                torch.testing.assert_close(patch[:, lit], rgb[:, None].expand(3, int(lit.sum())))


def test_balance_and_hard_negatives():
    data = visual_questions(3000, generator=gen(2))
    assert abs(data.answers.float().mean() - 0.5) < 0.03
    for k in range(3):
        assert abs((data.kinds == k).float().mean() - 1 / 3) < 0.03
    hard = 0
    for b in ((data.answers == 0) & (data.kinds > 0)).nonzero().flatten().tolist():
        color, shape, _ = parse(question_text(data, b).split())
        hard += bool(matches(data, b, color, shape, None).any())  # there, but not in the region
    n_no = int(((data.answers == 0) & (data.kinds > 0)).sum())
    assert hard / n_no > 0.4


def test_region_masks():
    assert region_mask("top").sum() == 8 and torch.equal(region_mask("top"), ~region_mask("bottom"))
    assert torch.equal(region_mask("left", 2), torch.tensor([[True, False], [True, False]]))
    assert scene_vocab().tokens[0] == "<pad>"


def test_kinds_seeds_and_devices(dev):
    only = visual_questions(50, kinds=(1,), generator=gen(3))
    assert torch.all(only.kinds == 1)
    a = visual_questions(20, generator=gen(4))
    b = visual_questions(20, generator=gen(4), device=dev)
    assert b.images.device.type == dev.type
    for x, y in zip(a, b):
        assert torch.equal(x, y.cpu())
    assert not torch.equal(a.images, visual_questions(20, generator=gen(5)).images)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be a positive int"),
    (dict(n=2, grid=1), "need grid >= 2"),
    (dict(n=2, cell=4), "cell >= 5"),
    (dict(n=2, objects=(0, 3)), "objects must be"),
    (dict(n=2, objects=(3, 20)), "objects must be"),
    (dict(n=2, kinds=(3,)), "kinds must be"),
    (dict(n=2, kinds=()), "kinds must be"),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scenes.visual_questions(**kwargs)
    with pytest.raises(ValueError, match="region must be one of"):
        region_mask("middle")
