"""bAbI-style stories, generated: reading comprehension for memory networks (chapter 5).

Weston et al. (2015) wrote twenty toy tasks ("bAbI") in which a question about a short story is
answered by one word, and every answer follows from a few sentences of the story, its
*supporting facts*. Seed 000, "Reading Comprehension", shows a memory network (Sukhbaatar et al.
2015) answering one of them and where its reading head looks at each hop. Three tasks are
generated here, in the spirit of the originals (the lexicons are bAbI's; the stories are drawn
afresh, not copied from the data set):

- **1, single supporting fact.** People move between places: "Mary moved to the bathroom. John
  went to the hallway. Where is Mary? bathroom". The support is the person's last move.
- **2, two supporting facts.** People also pick up and drop objects: "John picked up the football.
  John went to the hallway. Where is the football? hallway". An object goes where its holder goes;
  a dropped one stays where it was dropped. The support is the last pick-up or drop of the object,
  and its holder's last move before then (before the question, when it is still held).
- **16, basic induction.** Animals have a species and a colour, and every animal of a species has
  the species' colour: "Brian is a frog. Lily is gray. Brian is yellow. Julius is green. Greg is a
  frog. What color is Greg? yellow" (the lecture's story, ``SLIDE_STORY``). The asked animal's
  colour is never said; exactly one other animal of its species has its colour said. The support
  is the three sentences of the induction: the asked animal's species, the other's species, the
  other's colour.

A ``Story`` holds its sentences (lists of words, punctuation dropped), the question, the answer
word and the indices of its supporting sentences. ``babi_stories(task, n, split, generator)``
draws n stories; ``babi_vocab(task)`` is the closed vocabulary of a task (or of all three), with
the nil word "<pad>" at id 0; ``encode_stories`` turns stories into the tensors a memory network
reads, keeping the most recent ``memory_size`` sentences of each, as Sukhbaatar et al. do.

**Splits.** The test stories are disjoint from the training stories by construction, whatever the
seeds: a story belongs to the test split when the BLAKE2 hash of its text is 0 modulo 5, to the
training split otherwise, and each split draws stories until it has n of its own (rejection).
So the two splits follow the same distribution restricted to two disjoint halves of the story
space (a fifth and four fifths of it), and no test story is ever seen in training.

**Draws.** One 62-bit integer per story is drawn from the ``torch.Generator``; it seeds a Python
``random.Random`` that draws the story's words (far faster than one torch draw per word). A seed
still fixes every story.

Dimensions: B stories, M memory slots (sentences), L words per sentence or question.
"""
from __future__ import annotations

import functools
import hashlib
import random
from typing import NamedTuple, Sequence

import torch

from ..text import Vocab
from ._common import check_sizes, gen_device

__all__ = ["Story", "BabiBatch", "BABI_TASKS", "BABI_PEOPLE", "BABI_PLACES", "BABI_OBJECTS", "BABI_ANIMALS",
           "BABI_SPECIES", "BABI_COLORS", "SLIDE_STORY", "NIL", "babi_stories", "babi_vocab", "encode_stories",
           "story_text", "babi_split"]


class Story(NamedTuple):
    """One story: sentences (lists of words), the question (words), the answer (a word), and the
    indices into ``sentences`` of the supporting facts, in story order."""

    sentences: list
    question: list
    answer: str
    support: tuple


#: The tasks generated here: bAbI's number -> (name, fewest and most sentences of a story).
BABI_TASKS = {1: ("single supporting fact", (2, 10)),
              2: ("two supporting facts", (4, 20)),
              16: ("basic induction", (5, 9))}
#: bAbI's actors and places (tasks 1 and 2), objects (task 2), animals, species, colours (task 16).
BABI_PEOPLE = ("Mary", "John", "Sandra", "Daniel")
BABI_PLACES = ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen")
BABI_OBJECTS = ("football", "apple", "milk")
BABI_ANIMALS = ("Lily", "Bernhard", "Greg", "Brian", "Julius")
BABI_SPECIES = ("frog", "swan", "lion", "rhino")
BABI_COLORS = ("yellow", "gray", "white", "green")
_MOVES = (("moved", "to"), ("went", "to"), ("journeyed", "to"), ("travelled", "to"), ("went", "back", "to"))
_TAKES = (("picked", "up"), ("got",), ("grabbed",), ("took",))
_DROPS = (("dropped",), ("discarded",), ("put", "down"), ("left",))
#: The nil word: padding of sentences and of empty memory slots; id 0 of every ``babi_vocab``.
NIL = "<pad>"
#: The lecture's story (Seed 000, task 16), with its three supporting facts.
SLIDE_STORY = Story([s.split() for s in ("Brian is a frog", "Lily is gray", "Brian is yellow",
                                         "Julius is green", "Greg is a frog")],
                    "What color is Greg".split(), "yellow", (0, 2, 4))

#: A story is a test story when the hash of its text is 0 modulo this.
_TEST_MODULUS = 5


# ----------------------------------------------------------------------------------------------
# Task 1: single supporting fact

def _move(rng: random.Random, person: str, place: str) -> list[str]:
    """ "Mary moved to the bathroom", with one of bAbI's five verbs of motion."""
    return [person, *rng.choice(_MOVES), "the", place]


def _single_fact(rng: random.Random, n_sentences: int) -> Story:
    """Task 1: people move; where is one who moved? The support is that person's last move."""
    sentences, last = [], {}  # last: person -> (place, index of the move)
    for i in range(n_sentences):
        person, place = rng.choice(BABI_PEOPLE), rng.choice(BABI_PLACES)
        sentences.append(_move(rng, person, place))
        last[person] = (place, i)
    person = rng.choice(sorted(last))
    place, i = last[person]
    return Story(sentences, ["Where", "is", person], place, (i,))


# ----------------------------------------------------------------------------------------------
# Task 2: two supporting facts

class _World:
    """Task 2's state: where people are (and the sentence that put them there), who holds what,
    where dropped objects lie (and the two sentences that say so)."""

    def __init__(self):
        self.at: dict = {}  # person -> (place, index of the move)
        self.holder: dict = {}  # object -> (person, index of the pick-up)
        self.lying: dict = {}  # object -> (place, (index of the holder's move, index of the drop))

    def actions(self) -> tuple[list, list, list]:
        """What may happen next: the moves (anyone anywhere), the pick-ups (by a placed person, of an
        object no one holds that is unseen or lies where the person is), the drops (of held objects)."""
        moves = [("move", p, q) for p in BABI_PEOPLE for q in BABI_PLACES]
        takes = [("take", p, o) for p, (place, _) in self.at.items() for o in BABI_OBJECTS
                 if o not in self.holder and self.lying.get(o, (place,))[0] == place]
        drops = [("drop", p, o) for o, (p, _) in self.holder.items()]
        return moves, takes, drops

    def apply(self, kind: str, who: str, what: str, i: int) -> None:
        if kind == "move":
            self.at[who] = (what, i)
        elif kind == "take":
            self.holder[what] = (who, i)
            self.lying.pop(what, None)
        else:
            place, moved = self.at[who]
            self.lying[what] = (place, (moved, i))
            del self.holder[what]

    def where(self, obj: str) -> tuple[str, tuple]:
        """Where ``obj`` is and the indices of the two sentences that say so, in story order."""
        if obj in self.lying:
            return self.lying[obj]
        person, took = self.holder[obj]
        place, moved = self.at[person]
        return place, tuple(sorted((took, moved)))


def _action(rng: random.Random, world: _World) -> tuple:
    """A move with probability 1/2, else a pick-up or a drop (when one is possible)."""
    moves, takes, drops = world.actions()
    if rng.random() < 0.5 or not (takes or drops):
        return rng.choice(moves)
    return rng.choice(takes + drops)


def _sentence(rng: random.Random, kind: str, who: str, what: str) -> list[str]:
    if kind == "move":
        return _move(rng, who, what)
    return [who, *rng.choice(_TAKES if kind == "take" else _DROPS), "the", what]


def _two_facts(rng: random.Random, n_sentences: int) -> Story:
    """Task 2: people move, pick up and drop objects; where is an object someone handled?"""
    while True:  # until some object has been picked up (rarely more than one round)
        world, sentences = _World(), []
        for i in range(n_sentences):
            kind, who, what = _action(rng, world)
            sentences.append(_sentence(rng, kind, who, what))
            world.apply(kind, who, what, i)
        known = sorted(set(world.holder) | set(world.lying))
        if known:
            break
    obj = rng.choice(known)
    place, support = world.where(obj)
    return Story(sentences, ["Where", "is", "the", obj], place, support)


# ----------------------------------------------------------------------------------------------
# Task 16: basic induction

def _facts_of(name: str, species: str, color: str, which: str) -> list[tuple]:
    """The facts said of one animal: ``which`` is "s" (species), "c" (colour) or "sc" (both)."""
    facts = []
    if "s" in which:
        facts.append((name, "species", [name, "is", "a", species]))
    if "c" in which:
        facts.append((name, "color", [name, "is", color]))
    return facts


def _induction(rng: random.Random, n_sentences: int) -> Story:
    """Task 16: one other animal of the asked one's species with its colour, and two or three
    distractors (other species) with their species, colour or both; as in bAbI's stories, each
    animal's species comes before its colour, the animals' facts interleaved at random, and the
    asked animal's species is the last sentence, just before the question."""
    color = {s: rng.choice(BABI_COLORS) for s in BABI_SPECIES}  # the story's rule: each species' colour
    asked, witness, *others = rng.sample(BABI_ANIMALS, len(BABI_ANIMALS))
    species = rng.choice(BABI_SPECIES)
    animals = [_facts_of(witness, species, color[species], "sc")]  # per animal, its facts in order
    spare = n_sentences - 3  # sentences left for the distractors: two to six
    k = 2 if spare < 3 else rng.choice([2, 3]) if spare <= 4 else 3  # distractors that fit
    sizes = _split_sizes(rng, spare, k)
    for name, size in zip(others[:k], sizes):
        s = rng.choice([t for t in BABI_SPECIES if t != species])
        animals.append(_facts_of(name, s, color[s], "sc" if size == 2 else rng.choice("sc")))
    facts = []
    while any(animals):  # the next fact from an animal drawn in proportion to its facts left
        left = [a for a in animals for _ in a]
        facts.append(rng.choice(left).pop(0))
    facts += _facts_of(asked, species, color[species], "s")
    support = tuple(i for i, (name, _, _) in enumerate(facts) if name in (asked, witness))
    return Story([f[2] for f in facts], ["What", "color", "is", asked], color[species], support)


def _split_sizes(rng: random.Random, total: int, k: int) -> list[int]:
    """k sizes of 1 or 2 that add up to ``total`` (k <= total <= 2k), in random order."""
    sizes = [2] * (total - k) + [1] * (2 * k - total)
    rng.shuffle(sizes)
    return sizes


_MAKERS = {1: _single_fact, 2: _two_facts, 16: _induction}


# ----------------------------------------------------------------------------------------------
# Drawing stories, splits

def story_text(story: Story) -> str:
    """The story as text: one sentence a line, ending with "." , then "Question? answer"."""
    lines = [" ".join(s) + "." for s in story.sentences]
    return "\n".join(lines + [" ".join(story.question) + "? " + story.answer])


def babi_split(story: Story) -> str:
    """"test" or "train": the split a story belongs to, by the hash of its text (see the module)."""
    digest = hashlib.blake2b(story_text(story).encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") % _TEST_MODULUS == 0 else "train"


def _check_task(task) -> None:
    if task not in BABI_TASKS or isinstance(task, bool):
        raise ValueError(f"task must be one of the bAbI tasks {sorted(BABI_TASKS)}, got {task!r}")


def babi_stories(task: int, n: int, split: str = "train", generator: torch.Generator | None = None,
                 lengths: tuple[int, int] | None = None) -> list[Story]:
    """``n`` stories of bAbI task ``task`` (1, 2 or 16) from one split.

    Args:
        task: 1 (single supporting fact), 2 (two supporting facts) or 16 (basic induction).
        n: how many stories.
        split: "train" or "test"; the two never share a story (see the module's docstring).
        generator: a ``torch.Generator`` (``None``: torch's global one); a seed fixes the stories.
        lengths: the fewest and most sentences of a story, each count equally likely; by default
            ``BABI_TASKS[task][1]`` (task 16: between 5 and 9).

    Returns:
        a list of n ``Story``s.
    """
    _check_task(task)
    check_sizes(n=n)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    low, high = _check_lengths(task, lengths)
    stories = []
    while len(stories) < n:
        seed = int(torch.randint(2**62, (1,), generator=generator, device=gen_device(generator)))
        rng = random.Random(seed)
        story = _MAKERS[task](rng, rng.randint(low, high))
        if babi_split(story) == split:
            stories.append(story)
    return stories


def _check_lengths(task: int, lengths) -> tuple[int, int]:
    """The range of story lengths, checked; task 1 needs 1 sentence, task 2 two, task 16 five to nine."""
    if lengths is None:
        return BABI_TASKS[task][1]
    fewest = {1: 1, 2: 2, 16: 5}[task]
    ok = (isinstance(lengths, (tuple, list)) and len(lengths) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in lengths)
          and fewest <= lengths[0] <= lengths[1] and (task != 16 or lengths[1] <= 9))
    if not ok:
        most = "9" if task == 16 else "any"
        raise ValueError(f"lengths must be (fewest, most) sentences with {fewest} <= fewest <= most <= {most} "
                         f"for task {task}, got {lengths!r}")
    return tuple(lengths)


@functools.lru_cache(maxsize=None)
def babi_vocab(task: int | None = None) -> Vocab:
    """The closed vocabulary of task ``task`` (``None``: of all three), the nil word "<pad>" at id 0.

    Every word a story, a question or an answer of the task can hold, answers included, so that
    a model's answer is a distribution over the vocabulary, as in Sukhbaatar et al.
    """
    if task is not None:
        _check_task(task)
    words = [NIL]
    if task in (None, 1, 2):
        words += ["Where", "is", "the", *BABI_PEOPLE, *BABI_PLACES, *(w for m in _MOVES for w in m)]
    if task in (None, 2):
        words += [*BABI_OBJECTS, *(w for m in _TAKES + _DROPS for w in m)]
    if task in (None, 16):
        words += ["What", "color", "is", "a", *BABI_ANIMALS, *BABI_SPECIES, *BABI_COLORS]
    return Vocab(words, other=None)


# ----------------------------------------------------------------------------------------------
# Encoding for a memory network

class BabiBatch(NamedTuple):
    """B stories encoded for a memory network, all on one device.

    ``stories`` (B, M, L): word ids of the most recent M sentences of each story, in story order
    from slot 0, each sentence's words from position 0, padded with the nil id 0 (words and
    slots). ``queries`` (B, L): the questions' ids, padded likewise. ``answers`` (B,): the answer
    words' ids. ``mask`` (B, M): True at the slots that hold a sentence. ``support`` (B, M): True at
    the slots that hold a supporting fact.
    """

    stories: torch.Tensor
    queries: torch.Tensor
    answers: torch.Tensor
    mask: torch.Tensor
    support: torch.Tensor


def encode_stories(stories: Sequence[Story], vocab: Vocab, memory_size: int, device=None) -> BabiBatch:
    """Encode B stories for a memory network: the most recent ``memory_size`` sentences of each.

    A story longer than M = ``memory_size`` sentences loses its oldest ones (Sukhbaatar et al.
    keep the most recent 50); a supporting fact among them is then lost too. L is the most words
    of any sentence or question of the batch. ``vocab`` must have the nil word at id 0
    (``babi_vocab`` has); an unknown word raises a ``KeyError``.

    Returns:
        ``BabiBatch``: stories (B, M, L), queries (B, L), answers (B,) int64; mask, support (B, M) bool.
    """
    check_sizes(memory_size=memory_size)
    stories = list(stories)
    if not stories or not all(isinstance(s, Story) for s in stories):
        raise ValueError(f"stories must be a non-empty list of Story, got {len(stories)} items")
    if not isinstance(vocab, Vocab) or vocab.tokens[0] != NIL:
        raise ValueError(f"vocab must have the nil word {NIL!r} at id 0, got "
                         f"{vocab.tokens[0] if isinstance(vocab, Vocab) else type(vocab).__name__!r}")
    B, M = len(stories), memory_size
    L = max(len(w) for s in stories for w in [*s.sentences, s.question])
    ids = torch.zeros(B, M, L, dtype=torch.long)  # (B, M, L), nil everywhere at first
    queries = torch.zeros(B, L, dtype=torch.long)  # (B, L)
    mask = torch.zeros(B, M, dtype=torch.bool)
    support = torch.zeros(B, M, dtype=torch.bool)
    for b, story in enumerate(stories):
        first = max(0, len(story.sentences) - M)  # the oldest sentence kept
        for slot, words in enumerate(story.sentences[first:]):
            ids[b, slot, : len(words)] = vocab.encode(words)
            mask[b, slot] = True
        for i in story.support:
            if i >= first:
                support[b, i - first] = True
        queries[b, : len(story.question)] = vocab.encode(story.question)
    answers = torch.tensor([vocab.index(s.answer) for s in stories])  # (B,)
    return BabiBatch(*(t.to(device) for t in (ids, queries, answers, mask, support)))
