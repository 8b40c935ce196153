r"""The data of chapter 3: the lecture's hand-built LSTM cell, and the small data sets the chapter trains on.

- **The lecture's hand-built memory cell** (Seed 003, pages 19-25). One LSTM cell reads
  x = (x_1, x_2, x_3): when x_2 = 1 the input gate opens and x_1 is added to the memory, when
  x_2 = -1 the forget gate closes and the memory is reset, and when x_3 = 1 the output gate opens
  and the memory is shown. ``counting_cell()`` builds it with ``seqmem.LSTMCell``;
  ``SLIDE_INPUTS``, ``SLIDE_MEMORY`` and ``SLIDE_OUTPUTS`` are the slide's numbers.
- **Named entities** (Seed 000, "Named Entity Recognition"). ``ner_sentences`` writes sentences
  from templates with person, location and organisation names drawn from small lexicons, tagged
  in the BIO scheme; some names are both people and places ("Jordan", "Victoria"), so a tagger
  must read the context.
- **Sentiment with negation** (Seed 002, "Many to one"). ``sentiment_sentences`` writes reviews
  such as "the plot was not really good"; "not" flips the polarity of the adjective it governs,
  and in "X , but Y" the clause after "but" decides the label.
- **Text streams.** ``text_streams`` cuts a long text into B contiguous streams for a language
  model that carries its state from one chunk to the next and never resets it: the continual
  prediction setting in which Gers et al. (2000) found the forget gate indispensable.
- **Digit strips** (Seed 002, "Many to many (output is shorter)": speech recognition, read here
  as handwriting). ``digit_strips`` puts scikit-learn's 8 x 8 handwritten digits side by side with
  random gaps; a recogniser reads the strip one pixel column at a time and must output the digit
  string, which is far shorter than the column sequence: the task of CTC. Train and test strips
  are built from disjoint sets of digit images (``digit_images``).

Every generator takes a ``torch.Generator`` (``None``: torch's global one), so a seed fixes the data.

Dimensions: B batch, T time (pixel columns), R = 8 rows of a digit image, L label length.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from .lstm import LSTMCell

__all__ = [
    "SLIDE_INPUTS", "SLIDE_MEMORY", "SLIDE_OUTPUTS", "counting_cell_weights", "counting_cell",
    "PERSONS_FIRST", "PERSONS_LAST", "LOCATIONS", "ORGANISATIONS", "HELDOUT_NAMES", "NER_TEMPLATES",
    "NER_TAGS", "ner_sentences",
    "POSITIVE", "NEGATIVE", "sentiment_sentences",
    "digit_images", "digit_strips", "edit_distance", "label_error_rate", "text_streams",
]

# ----------------------------------------------------------------------------------------------
# The lecture's hand-built LSTM cell (Seed 003, pages 19-25)

#: The slide's input sequence x^1 ... x^9, one row (x_1, x_2, x_3) per step: (9, 3).
SLIDE_INPUTS = torch.tensor([[1.0, 0, 0], [3, 1, 0], [2, 0, 0], [4, 1, 0], [2, 0, 0],
                             [1, 0, 1], [3, -1, 0], [6, 1, 0], [1, 0, 1]])
#: The memory c after each step (the slide draws the memory above each input: 0 before the
#: first, then these values shifted by one step).
SLIDE_MEMORY = torch.tensor([0.0, 3, 3, 7, 7, 7, 0, 6, 6])
#: The cell's output y at each step.
SLIDE_OUTPUTS = torch.tensor([0.0, 0, 0, 0, 0, 7, 0, 0, 6])


def counting_cell_weights(dtype: torch.dtype = torch.float32, device=None) -> dict:
    """The slide's weights, laid out as ``torch.nn.LSTMCell``'s (gates in the order i, f, g, o).

    Each gate reads (x_1, x_2, x_3) and a bias (the slide's constant input 1); nothing reads h:

    ========================  =========  =====  ===========================================
    gate                      weights    bias   effect
    ========================  =========  =====  ===========================================
    input gate   z_i          (0, 100, 0)  -10  open (σ ≈ 1) only when x_2 = 1
    forget gate  z_f          (0, 100, 0)   10  keeps the memory unless x_2 = -1
    cell input   z            (1, 0, 0)      0  the value x_1 (a linear g)
    output gate  z_o          (0, 0, 100)  -10  open only when x_3 = 1
    ========================  =========  =====  ===========================================

    Returns:
        ``{"weight_ih": (4, 3), "weight_hh": (4, 1), "bias_ih": (4,), "bias_hh": (4,)}``, the keys
        of the state dict of an LSTM cell with input size 3 and hidden size 1.
    """
    kw = {"dtype": dtype, "device": device}
    weight_ih = torch.tensor([[0.0, 100, 0],   # z_i, the input gate
                              [0.0, 100, 0],   # z_f, the forget gate
                              [1.0, 0, 0],     # z, the cell input
                              [0.0, 0, 100]], **kw)  # z_o, the output gate
    bias_ih = torch.tensor([-10.0, 10, 0, -10], **kw)
    return {"weight_ih": weight_ih, "weight_hh": torch.zeros(4, 1, **kw),
            "bias_ih": bias_ih, "bias_hh": torch.zeros(4, **kw)}


def _identity(a: torch.Tensor) -> torch.Tensor:
    return a


def counting_cell(dtype: torch.dtype = torch.float32, device=None):
    """The lecture's hand-built memory cell: a ``seqmem.LSTMCell(3, 1)`` with the slide's weights.

    The gates are sigmoids; the cell input g and the output activation h are linear, as on the
    slide (so the memory holds the sum itself, not its tanh). No peepholes (variant "NP").
    Running it over ``SLIDE_INPUTS`` gives ``SLIDE_MEMORY`` and ``SLIDE_OUTPUTS`` up to the
    gates' saturation (σ(10) = 0.99995, not 1).
    """
    cell = LSTMCell(3, 1, bias=True, variant="NP", input_activation=_identity,
                    output_activation=_identity)
    cell.load_state_dict(counting_cell_weights())
    return cell.to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Sampling helpers: every draw goes through a torch.Generator


def _randint(n: int, generator) -> int:
    """A uniform draw from 0 ... n - 1."""
    return int(torch.randint(n, (1,), generator=generator))


def _choice(items: Sequence, generator):
    return items[_randint(len(items), generator)]


def _coin(p: float, generator) -> bool:
    return bool(torch.rand(1, generator=generator) < p)


def _check_count(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")


# ----------------------------------------------------------------------------------------------
# Named entities, BIO-tagged

#: First and last names of people. "Jordan", "Victoria" and "Georgia" are also places.
PERSONS_FIRST = ["Jane", "Tom", "Maria", "Ahmed", "Wei", "Olga", "Kenji", "Amara", "Lucas", "Priya",
                 "Jordan", "Victoria", "Georgia", "Sofia", "Daniel", "Chen", "Fatima", "Ivan"]
PERSONS_LAST = ["Villanueva", "Smith", "Okafor", "Novak", "Tanaka", "Garcia", "Kowalski", "Haddad",
                "Larsen", "Silva", "Jordan", "Moreau", "Nguyen", "Brown", "Petrov", "Chen"]
#: Places, some of several words.
LOCATIONS = ["Sydney", "Chicago", "Taipei", "New York", "Buenos Aires", "Cape Town", "Oslo", "Lima",
             "Jordan", "Victoria", "Georgia", "Hong Kong", "Rio de Janeiro", "Nairobi", "Berlin",
             "Kyoto", "San Francisco", "Toronto"]
#: Organisations, some with a place inside their name ("Bank of Sydney" is one ORG).
ORGANISATIONS = ["United Airlines", "United Airlines Holding", "Acme Corporation", "Bank of Sydney",
                 "Red Cross", "Globex", "Initech", "University of Chicago", "Northwind Traders",
                 "Blue Harbor Shipping", "Oslo Energy", "Vertex Labs", "Apex Foods", "Stark Industries"]
#: Names that only test sentences use (``ner_sentences(split="test")``), to see whether a tagger
#: finds entities it has never seen from their context.
HELDOUT_NAMES = {
    "first": ["Nadia", "Oscar", "Yuki", "Mateo", "Leila", "Arjun"],
    "last": ["Fischer", "Mensah", "Ortiz", "Lindqvist", "Sato"],
    "LOC": ["Lagos", "Montreal", "Santiago", "Kuala Lumpur", "Lisbon"],
    "ORG": ["Meridian Credit", "Nimbus Software", "Green Valley Farms", "Summit Insurance"],
}
#: The tags, O first: B- opens an entity, I- continues it.
NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
#: Sentence templates; {PER}, {LOC} and {ORG} are filled with names, other words are tagged O.
NER_TEMPLATES = [
    "{PER} flew to {LOC} on Monday .",
    "{PER} of {ORG} discussed the {LOC} route .",
    "{ORG} opened a new office in {LOC} .",
    "{PER} met {PER} in {LOC} last week .",
    "yesterday {PER} joined {ORG} as an engineer .",
    "the mayor of {LOC} thanked {PER} .",
    "{ORG} hired {PER} and {PER} .",
    "according to {PER} , {ORG} will leave {LOC} .",
    "{PER} lives in {LOC} and works for {ORG} .",
    "shares of {ORG} rose after {PER} spoke in {LOC} .",
    "{LOC} welcomed {PER} on a rainy day .",
    "{PER} said that {ORG} would expand to {LOC} .",
    "we visited {LOC} with {PER} .",
    "{PER} left {ORG} for {ORG} .",
    "the talks between {ORG} and {ORG} ended in {LOC} .",
    "{PER} called {PER} from {LOC} .",
]


def _lexicons(split: str) -> dict:
    """The names a split draws from: the lexicons, plus the held-out names for "test"."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    lex = {"first": PERSONS_FIRST, "last": PERSONS_LAST, "LOC": LOCATIONS, "ORG": ORGANISATIONS}
    if split == "test":
        lex = {k: v + HELDOUT_NAMES[k] for k, v in lex.items()}
    return lex


def _mention(slot: str, lex: dict, generator) -> list[str]:
    """A name for a slot; a person is a first name, a last name, or both."""
    if slot != "PER":
        return _choice(lex[slot], generator).split()
    kind = _randint(3, generator)
    first, last = _choice(lex["first"], generator), _choice(lex["last"], generator)
    return [first] if kind == 0 else [last] if kind == 1 else [first, last]


def _fill(template: str, lex: dict, generator) -> tuple[list[str], list[str]]:
    tokens, tags = [], []
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            kind = word[1:-1]
            mention = _mention(kind, lex, generator)
            tokens += mention
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return tokens, tags


def ner_sentences(n: int, split: str = "train",
                  generator: torch.Generator | None = None) -> list[tuple[list[str], list[str]]]:
    """``n`` generated sentences with their BIO tags (PER, LOC, ORG).

    A sentence is a template of ``NER_TEMPLATES`` whose slots are filled with names: a person is a
    first name, a last name or both; locations and organisations come from ``LOCATIONS`` and
    ``ORGANISATIONS``. ``split="test"`` also draws from ``HELDOUT_NAMES``, names that no training
    sentence contains. The first word of an entity is tagged B-kind, the following ones I-kind,
    every other word O. For example ``Jane Villanueva of United Airlines Holding discussed the
    Chicago route .`` is tagged ``B-PER I-PER O B-ORG I-ORG I-ORG O O B-LOC O O``.

    Returns:
        a list of ``(tokens, tags)`` pairs, two lists of strings of one length.
    """
    _check_count(n)
    lex = _lexicons(split)
    return [_fill(_choice(NER_TEMPLATES, generator), lex, generator) for _ in range(n)]


# ----------------------------------------------------------------------------------------------
# Sentiment with negation

#: Adjectives that make a clause positive, and negative, when not negated.
POSITIVE = ["good", "great", "excellent", "wonderful", "enjoyable", "fun", "brilliant", "pleasant"]
NEGATIVE = ["bad", "terrible", "boring", "awful", "dull", "poor", "disappointing", "bland"]
_SUBJECTS = ["the movie", "the film", "the plot", "the acting", "the food", "the service",
             "the hotel", "the book", "the music", "the ending", "the staff", "the story"]
_VERBS = ["was", "is", "seemed", "felt"]
_INTENSIFIERS = ["really", "very", "quite", "so", "that", "terribly", "truly", "especially"]
_ENDINGS = ["", "to be honest", "in my opinion", "overall", "this time", "for me"]


def _clause(negated: bool, positive: bool, max_intensifiers: int, generator) -> list[str]:
    """``subject verb [not] intensifier* adjective``: negation is separated from its adjective."""
    words = _choice(_SUBJECTS, generator).split() + [_choice(_VERBS, generator)]
    if negated:
        words.append("not")
    words += [_choice(_INTENSIFIERS, generator) for _ in range(_randint(max_intensifiers + 1, generator))]
    words.append(_choice(POSITIVE if positive else NEGATIVE, generator))
    return words


def sentiment_sentences(n: int, p_negated: float = 0.5, p_but: float = 0.3, max_intensifiers: int = 3,
                        generator: torch.Generator | None = None) -> list[tuple[list[str], int, bool]]:
    """``n`` generated one-sentence reviews, each with its label (1 positive, 0 negative).

    A clause reads ``the plot was [not] [really very ...] ADJ``: its polarity is that of the
    adjective (``POSITIVE`` or ``NEGATIVE``), flipped by "not". Up to ``max_intensifiers`` words
    stand between "not" and the adjective, so the negation must be remembered for a few steps. With
    probability ``p_but`` the review has two clauses, ``X , but Y``, and the second decides the
    label: which "not" counts depends on word order, so a bag of words cannot get it right.
    Each clause is negated with probability ``p_negated``, independently.

    Returns:
        a list of ``(tokens, label, negated)``: ``negated`` tells whether the deciding clause has "not".
    """
    _check_count(n)
    for name, p in (("p_negated", p_negated), ("p_but", p_but)):
        if not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    out = []
    for _ in range(n):
        tokens = []
        if _coin(p_but, generator):  # a first clause that does not decide
            tokens += _clause(_coin(p_negated, generator), _coin(0.5, generator), max_intensifiers, generator)
            tokens += [",", "but"]
        negated, positive = _coin(p_negated, generator), _coin(0.5, generator)
        tokens += _clause(negated, positive, max_intensifiers, generator)
        tokens += _choice(_ENDINGS, generator).split()
        out.append((tokens, int(positive != negated), negated))
    return out


# ----------------------------------------------------------------------------------------------
# Strips of handwritten digits, for CTC


@functools.lru_cache(maxsize=None)
def _digits():
    """scikit-learn's 1,797 8 x 8 digits (ship with the package), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.tensor(d.images, dtype=torch.float32) / 16.0  # (N, 8, 8), ink 0 ... 16
    return images, torch.tensor(d.target, dtype=torch.long)


def digit_images(split: str = "train", test_fraction: float = 0.25):
    """scikit-learn's 8 x 8 digit images, cut once into disjoint train and test parts.

    The cut is a fixed permutation (seed 0), the same on every call and every machine, so test
    strips are built from images that no training strip contains.

    Returns:
        images: (N, 8, 8) floats in [0, 1] (0 is paper, 1 full ink); labels: (N,) int64 digits.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    images, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = int(round(test_fraction * len(labels)))
    idx = order[:n_test] if split == "test" else order[n_test:]
    return images[idx], labels[idx]


def digit_strips(batch_size: int, n_digits: tuple[int, int] = (3, 5), split: str = "train",
                 gap: tuple[int, int] = (0, 2), generator: torch.Generator | None = None, device=None):
    """A batch of strips of handwritten digits, to be read one pixel column at a time.

    Each strip holds between ``n_digits[0]`` and ``n_digits[1]`` digit images (drawn from
    ``digit_images(split)``) side by side, with ``gap[0]`` to ``gap[1]`` blank columns before,
    between and after them. Strips shorter than the longest of the batch are padded with blank
    columns at the end, which is just more paper, so every strip has the same length T.

    Returns:
        x: (B, T, 8), x[b, t] the 8 pixels of column t of strip b (time is the column).
        targets: (B, L) int64, the digits of each strip (0-9), padded with 0 after its length.
        target_lengths: (B,) int64, the number of digits of each strip.
    """
    _check_count(batch_size)
    lo, hi = n_digits
    if not 1 <= lo <= hi or not 0 <= gap[0] <= gap[1]:
        raise ValueError(f"need 1 <= n_digits[0] <= n_digits[1] and 0 <= gap[0] <= gap[1], got {n_digits}, {gap}")
    images, labels = digit_images(split)
    gdev = generator.device if generator is not None else torch.device("cpu")
    lengths = torch.randint(lo, hi + 1, (batch_size,), generator=generator, device=gdev).cpu()  # (B,)
    picks = torch.randint(len(labels), (batch_size, hi), generator=generator, device=gdev).cpu()  # (B, hi)
    widths = torch.randint(gap[0], gap[1] + 1, (batch_size, hi + 1), generator=generator, device=gdev).cpu()
    used = torch.arange(hi) < lengths[:, None]  # (B, hi): digit k belongs to strip b
    # digit k starts after the gaps 0..k and the k digits before it (8 columns each)
    starts = widths[:, :hi].cumsum(1) + 8 * torch.arange(hi)  # (B, hi)
    ends = starts[torch.arange(batch_size), lengths - 1] + 8 + widths[torch.arange(batch_size), lengths]  # (B,)
    x = torch.zeros(batch_size, int(ends.max()), 8)  # (B, T, 8); zeros are paper
    b, k = used.nonzero(as_tuple=True)  # one row per digit placed
    cols = starts[b, k][:, None] + torch.arange(8)  # (D, 8): the columns digit (b, k) covers
    x[b[:, None], cols] = images[picks[b, k]].transpose(1, 2)  # columns of each image: (D, 8, 8)
    targets = torch.where(used, labels[picks], 0)[:, : int(lengths.max())]  # (B, L)
    dev = device or gdev
    return x.to(dev), targets.to(dev), lengths.to(dev)


# ----------------------------------------------------------------------------------------------
# Scoring transcriptions


def edit_distance(a: Sequence, b: Sequence) -> int:
    """The Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    prev = list(range(len(b) + 1))  # distances from a[:0] to each prefix of b
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def label_error_rate(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """The label error rate: total edit distance over total reference length (Graves et al. 2006)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"need one hypothesis per reference, got {len(hypotheses)} and {len(references)}")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references are all empty: the label error rate is undefined")
    return sum(edit_distance(h, r) for h, r in zip(hypotheses, references)) / total


# ----------------------------------------------------------------------------------------------
# Continual text streams


def text_streams(ids: torch.Tensor, batch_size: int):
    """Cut a text into ``batch_size`` contiguous streams, each with the tokens that follow it.

    Stream b is the b-th of B equal consecutive pieces of the text; the last ``len(ids) % B`` tokens
    (and one more, to have a next token) are dropped. Read the streams chunk by chunk along time,
    carrying the state (``seqmem.fit(..., truncate=k)``), and each batch row continues the text
    where the previous chunk left it.

    Args:
        ids: (N,) int64 token ids.

    Returns:
        x, y: (B, N') int64 with N' = (N - 1) // B, y[b, t] the token after x[b, t].
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point:
        got = (tuple(ids.shape), ids.dtype) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D integer tensor (N,), got {got}")
    _check_count(batch_size)
    n = (len(ids) - 1) // batch_size  # tokens per stream
    if n < 1:
        raise ValueError(f"{len(ids)} ids are too few for {batch_size} streams")
    x = ids[: n * batch_size].view(batch_size, n)  # (B, N'): stream b starts at b * N'
    y = ids[1 : n * batch_size + 1].view(batch_size, n)  # (B, N')
    return x, y
