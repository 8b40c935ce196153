"""Language tasks, generated from templates and lexicons: words that need their context.

- **Slot filling** (chapter 1; Seed 002, the ticket-booking example): ``slot_filling`` tags the
  city after "arrive" as the destination and after "leave" as the place of departure.
- **Named entities** (chapter 3; Seed 000, "Named Entity Recognition"). ``ner_sentences`` writes
  sentences from templates with person, location and organisation names drawn from small
  lexicons, tagged in the BIO scheme; some names are both people and places ("Jordan",
  "Victoria"), so a tagger must read the context.
- **Sentiment with negation** (chapter 3; Seed 002, "Many to one"). ``sentiment_sentences`` writes
  reviews such as "the plot was not really good"; "not" flips the polarity of the adjective it
  governs, and in "X , but Y" the clause after "but" decides the label.

Every generator takes a ``torch.Generator`` (``None``: torch's global one), so a seed fixes the data.
"""
from __future__ import annotations

import functools

import torch

from ..core import IGNORE_INDEX
from ..text import Vocab
from ._common import check_sizes, choice, coin, gen_device, randint

__all__ = ["slot_filling", "slot_vocab", "SLOT_LABELS", "SLOT_CITIES",
           "PERSONS_FIRST", "PERSONS_LAST", "LOCATIONS", "ORGANISATIONS", "HELDOUT_NAMES", "NER_TEMPLATES",
           "NER_TAGS", "ner_sentences", "POSITIVE", "NEGATIVE", "sentiment_sentences"]

# ----------------------------------------------------------------------------------------------
# Slot filling

#: The slots of the lecture's ticket-booking example (Seed 002), by label id.
SLOT_LABELS = ("none", "destination", "time of arrival", "place of departure", "time of departure")
#: The cities ``slot_filling`` draws from by default (the lecture's Taipei among them).
SLOT_CITIES = ("Taipei", "Tokyo", "Sydney", "Oslo", "Paris", "Lima", "Boston", "Delhi")
_SLOT_OPENINGS = ((), ("please",), ("we", "will"), ("i", "want", "to"), ("i", "would", "like", "to"))
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_PAD = "<pad>"


def _ordinal(d: int) -> str:
    suffix = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


_DAYS = tuple(_ordinal(d) for d in range(1, 29))


@functools.lru_cache(maxsize=1)
def slot_vocab() -> Vocab:
    """The words of ``slot_filling``, with the padding word "<pad>" and the lecture's "other" last."""
    words = [w for opening in _SLOT_OPENINGS for w in opening] + ["arrive", "leave", "on"]
    return Vocab(words + list(SLOT_CITIES) + list(_MONTHS) + list(_DAYS) + [_PAD])


def _slot_sentence(opening, verb: str, city: str, month: str, day: str):
    """One sentence and its slot ids: "i want to arrive Taipei on November 2nd"."""
    arrive = verb == "arrive"
    place, time = (1, 2) if arrive else (3, 4)  # ids in SLOT_LABELS
    words = list(opening) + [verb, city, "on", month, day]
    labels = [0] * (len(opening) + 1) + [place, 0, time, time]
    return words, labels


def slot_filling(batch_size: int, cities=SLOT_CITIES, generator=None, device=None):
    """Slot filling for a ticket-booking system: the same word fills a different slot by context.

    Sentences such as "i would like to arrive Taipei on November 2nd" and "leave Taipei on
    November 2nd" (Seed 002): the city is the destination after "arrive" and the place of
    departure after "leave", and the date is the time of arrival or of departure. Each sentence
    opens with one of five openings (none, "please", "we will", "i want to", "i would like to"),
    so the verb stands at position 0 to 4; the city follows it, the date's two words come three
    and four words after it. A tagger that sees one word at a time can only guess between the
    two readings; it needs memory of the verb.

    Words are ids of ``slot_vocab()``; a city not in ``SLOT_CITIES`` (pass ``cities``) becomes the
    lecture's "other" word. Shorter sentences are padded at the end with "<pad>", labelled
    ``IGNORE_INDEX``.

    Returns:
        x: (B, 9) int64 word ids.
        y: (B, 9) int64 slot ids (see ``SLOT_LABELS``), IGNORE_INDEX on padding.
    """
    check_sizes(batch_size=batch_size)
    if isinstance(cities, str) or not cities:
        raise ValueError(f"cities must be a non-empty sequence of names, got {cities!r}")
    gdev = gen_device(generator)
    sizes = (len(_SLOT_OPENINGS), 2, len(cities), len(_MONTHS), len(_DAYS))
    draws = torch.stack([torch.randint(0, n, (batch_size,), generator=generator, device=gdev)
                         for n in sizes], 1).tolist()  # (B, 5): opening, verb, city, month, day
    vocab, T = slot_vocab(), max(map(len, _SLOT_OPENINGS)) + 5
    x = torch.full((batch_size, T), vocab.index(_PAD), dtype=torch.long)
    y = torch.full((batch_size, T), IGNORE_INDEX, dtype=torch.long)
    for b, (o, v, c, m, d) in enumerate(draws):
        words, labels = _slot_sentence(_SLOT_OPENINGS[o], ("arrive", "leave")[v], cities[c], _MONTHS[m], _DAYS[d])
        x[b, : len(words)] = vocab.encode(words)
        y[b, : len(words)] = torch.tensor(labels)
    return x.to(device or gdev), y.to(device or gdev)


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
        return choice(lex[slot], generator).split()
    kind = randint(3, generator)
    first, last = choice(lex["first"], generator), choice(lex["last"], generator)
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
    check_sizes(n=n)
    lex = _lexicons(split)
    return [_fill(choice(NER_TEMPLATES, generator), lex, generator) for _ in range(n)]


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
    words = choice(_SUBJECTS, generator).split() + [choice(_VERBS, generator)]
    if negated:
        words.append("not")
    words += [choice(_INTENSIFIERS, generator) for _ in range(randint(max_intensifiers + 1, generator))]
    words.append(choice(POSITIVE if positive else NEGATIVE, generator))
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
    check_sizes(n=n)
    for name, p in (("p_negated", p_negated), ("p_but", p_but)):
        if not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    out = []
    for _ in range(n):
        tokens = []
        if coin(p_but, generator):  # a first clause that does not decide
            tokens += _clause(coin(p_negated, generator), coin(0.5, generator), max_intensifiers, generator)
            tokens += [",", "but"]
        negated, positive = coin(p_negated, generator), coin(0.5, generator)
        tokens += _clause(negated, positive, max_intensifiers, generator)
        tokens += choice(_ENDINGS, generator).split()
        out.append((tokens, int(positive != negated), negated))
    return out
