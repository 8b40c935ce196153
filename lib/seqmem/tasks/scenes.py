"""Generated scenes of coloured shapes with yes/no questions: visual question answering (chapter 5).

The lecture's example of visual question answering asks of a photograph "Is there a red square on
the bottom of the cat?" (Xu and Saenko 2016). Here the pictures are small and generated: a G x G
grid of cells (``grid`` = 4 by default) of ``cell`` x ``cell`` pixels (8), 2 to 5 of them holding
one shape each, a ``SCENE_SHAPES`` (square, circle, triangle) in a ``SCENE_COLORS`` (red, green,
blue, yellow), of 5 or 6 pixels and placed anywhere in its cell, on a black ground. A question
comes from one of three templates (``QUESTION_KINDS``):

- "is there a red square ?" (colour and shape, anywhere);
- "is there a red square on the bottom ?" (colour, shape and region);
- "is there a square on the left ?" (shape and region);

the regions (``SCENE_REGIONS``) being the top, bottom, left and right halves of the grid. Each
question's answer is yes or no with equal chance; half of the "no" questions about a region ask
for a colour and shape that the scene does hold, but elsewhere, so that knowing what is in the
picture is not enough: the model must know where. ``relevant`` marks, for a "yes", the cells
whose object makes it true (the attention should go there), and nothing for a "no".

Draws: one 62-bit integer per scene from the ``torch.Generator`` seeds a Python ``random.Random``
for its objects and question, as ``seqmem.tasks.babi`` does; a seed fixes every scene.

Dimensions: B scenes, G grid cells a side, P = G * cell pixels a side, Lq question words.
"""
from __future__ import annotations

import functools
import random
from typing import NamedTuple

import torch

from ..text import Vocab
from ._common import check_sizes, gen_device

__all__ = ["SCENE_COLORS", "SCENE_SHAPES", "SCENE_REGIONS", "QUESTION_KINDS", "Scenes", "scene_vocab",
           "visual_questions", "question_text", "region_mask"]

#: The colours, as RGB in [0, 1].
SCENE_COLORS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.2, 0.35, 1.0), "yellow": (0.95, 0.85, 0.1)}
_RGB = {name: torch.tensor(rgb)[:, None, None] for name, rgb in SCENE_COLORS.items()}  # (3, 1, 1) each
SCENE_SHAPES = ("square", "circle", "triangle")
SCENE_REGIONS = ("top", "bottom", "left", "right")
#: The question templates, by the attributes they name.
QUESTION_KINDS = ("color shape", "color shape region", "shape region")
_PAD = "<pad>"


class Scenes(NamedTuple):
    """B scenes and their questions.

    ``images`` (B, 3, P, P) floats in [0, 1]; ``questions`` (B, Lq) word ids padded with 0 and
    ``lengths`` (B,); ``answers`` (B,) 1 for yes, 0 for no; ``relevant`` (B, G, G) bool, the cells
    whose object answers a "yes" (none for a "no"); ``kinds`` (B,) the template, an index into
    ``QUESTION_KINDS``; ``objects`` (B, G, G) int, the object of each cell as
    ``color * len(SCENE_SHAPES) + shape`` (indices into ``SCENE_COLORS`` and ``SCENE_SHAPES``), -1 for
    an empty cell.
    """

    images: torch.Tensor
    questions: torch.Tensor
    lengths: torch.Tensor
    answers: torch.Tensor
    relevant: torch.Tensor
    kinds: torch.Tensor
    objects: torch.Tensor


def scene_vocab() -> Vocab:
    """The closed vocabulary of the questions, "<pad>" at id 0."""
    return Vocab([_PAD, "is", "there", "a", *SCENE_COLORS, *SCENE_SHAPES, "on", "the", *SCENE_REGIONS, "?"],
                 other=None)


def region_mask(region: str, grid: int = 4) -> torch.Tensor:
    """The cells (G, G) bool of a region: the top, bottom, left or right half of the grid."""
    if region not in SCENE_REGIONS:
        raise ValueError(f"region must be one of {SCENE_REGIONS}, got {region!r}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # (G, G) each
    half = grid / 2
    return {"top": rows < half, "bottom": rows >= half, "left": cols < half, "right": cols >= half}[region]


@functools.lru_cache(maxsize=None)
def _region_cells(grid: int) -> dict:
    """Each region's cells (row, col), as a set."""
    return {r: {tuple(rc) for rc in region_mask(r, grid).nonzero().tolist()} for r in SCENE_REGIONS}


@functools.lru_cache(maxsize=None)
def _shape_mask(shape: str, size: int) -> torch.Tensor:
    """A shape of ``size`` x ``size`` pixels, (size, size) float: 1 inside."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    centre = (size - 1) / 2
    if shape == "square":
        inside = torch.ones(size, size, dtype=torch.bool)
    elif shape == "circle":
        inside = (x - centre) ** 2 + (y - centre) ** 2 <= (size / 2) ** 2 * 0.9
    else:  # a triangle standing on its base, apex at the top
        inside = (x - centre).abs() <= (y + 1) / size * (size / 2)
    return inside.float()


def _question(rng: random.Random, objects: dict, grid: int, kinds: tuple) -> tuple[int, list[str], int, list]:
    """A question about the scene ``objects`` ((row, col) -> (color, shape)): kind, words, answer, cells."""
    kind = rng.choice(kinds)
    colors = list(SCENE_COLORS) if kind < 2 else [None]
    regions = SCENE_REGIONS if kind > 0 else [None]
    masks = _region_cells(grid)
    candidates = {True: [], False: [], "elsewhere": []}
    for color in colors:
        for shape in SCENE_SHAPES:
            for region in regions:
                like = [cell for cell, (c, s) in objects.items() if s == shape and color in (None, c)]
                cells = [cell for cell in like if region is None or cell in masks[region]]
                candidates[bool(cells)].append((color, shape, region, cells))
                if like and not cells:
                    candidates["elsewhere"].append((color, shape, region, cells))
    yes = rng.random() < 0.5
    pool = candidates["elsewhere"] if not yes and kind > 0 and candidates["elsewhere"] and rng.random() < 0.5 \
        else candidates[yes]
    color, shape, region, cells = rng.choice(pool)
    words = ["is", "there", "a", *([color] if color else []), shape, *(["on", "the", region] if region else []), "?"]
    return kind, words, int(yes), cells


def _scene(rng: random.Random, grid: int, cell: int, objects: tuple[int, int], kinds: tuple):
    """One scene: its image (3, P, P), objects by cell, and a question about it."""
    n = rng.randint(*objects)
    where = rng.sample([(r, c) for r in range(grid) for c in range(grid)], n)
    scene = {rc: (rng.choice(list(SCENE_COLORS)), rng.choice(SCENE_SHAPES)) for rc in where}
    image = torch.zeros(3, grid * cell, grid * cell)
    for (r, c), (color, shape) in scene.items():
        size = rng.randint(cell - 3, cell - 2)
        y, x = r * cell + rng.randint(0, cell - size), c * cell + rng.randint(0, cell - size)
        image[:, y:y + size, x:x + size] = _RGB[color] * _shape_mask(shape, size)  # (3, size, size)
    return image, scene, _question(rng, scene, grid, kinds)


def visual_questions(n: int, grid: int = 4, cell: int = 8, objects: tuple[int, int] = (2, 5),
                     kinds: tuple[int, ...] = (0, 1, 2), generator: torch.Generator | None = None,
                     device=None) -> Scenes:
    """``n`` scenes of ``objects`` = (fewest, most) shapes on a ``grid`` x ``grid`` of cells of
    ``cell`` pixels, one yes/no question each from a template of ``kinds`` (indices into
    ``QUESTION_KINDS``, drawn with equal chance; see the module docstring). Returns ``Scenes``."""
    check_sizes(n=n, grid=grid, cell=cell)
    kinds = tuple(kinds) if isinstance(kinds, (tuple, list)) else kinds
    if not (isinstance(kinds, tuple) and kinds and all(k in range(len(QUESTION_KINDS)) for k in kinds)):
        raise ValueError(f"kinds must be a non-empty tuple of template indices in 0 ... {len(QUESTION_KINDS) - 1}, "
                         f"got {kinds!r}")
    if grid < 2 or cell < 5:
        raise ValueError(f"need grid >= 2 (two halves) and cell >= 5 pixels (a shape of 3 or more), got "
                         f"grid={grid}, cell={cell}")
    if not (isinstance(objects, tuple) and len(objects) == 2 and all(isinstance(k, int) for k in objects)
            and 1 <= objects[0] <= objects[1] <= grid * grid):
        raise ValueError(f"objects must be (fewest, most) with 1 <= fewest <= most <= grid * grid = {grid * grid}, "
                         f"got {objects!r}")
    vocab = scene_vocab()
    draws = torch.randint(2 ** 62, (n,), generator=generator, device=gen_device(generator)).tolist()
    scenes = [_scene(random.Random(d), grid, cell, objects, kinds) for d in draws]
    Lq = max(len(words) for *_, (_, words, _, _) in scenes)
    questions = torch.zeros(n, Lq, dtype=torch.long)
    relevant = torch.zeros(n, grid, grid, dtype=torch.bool)
    codes = torch.full((n, grid, grid), -1, dtype=torch.long)
    colors = list(SCENE_COLORS)
    for b, (_, scene, (_, words, _, cells)) in enumerate(scenes):
        questions[b, :len(words)] = vocab.encode(words)
        for rc in cells:
            relevant[b][rc] = True
        for rc, (color, shape) in scene.items():
            codes[b][rc] = colors.index(color) * len(SCENE_SHAPES) + SCENE_SHAPES.index(shape)
    images = torch.stack([image for image, *_ in scenes])  # (B, 3, P, P)
    lengths = torch.tensor([len(q[1]) for *_, q in scenes])
    answers, kinds = torch.tensor([q[2] for *_, q in scenes]), torch.tensor([q[0] for *_, q in scenes])
    return Scenes(*(t.to(device) for t in (images, questions, lengths, answers, relevant, kinds, codes)))


def question_text(scenes: Scenes, b: int) -> str:
    """Question ``b`` of ``scenes`` as a string."""
    return " ".join(scene_vocab().decode(scenes.questions[b, :scenes.lengths[b]]))
