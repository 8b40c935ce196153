"""seqmem.tasks.babi (chapter 5): bAbI-style stories for memory networks.

Every answer and every support is checked against solvers written here from the tasks' rules,
reading the sentences' words only: a person is where they last moved; an object is where its
holder is, or where it was dropped; an animal has the colour of another animal of its species.
Also: seeds fix the stories, the splits never share a story, story lengths, the vocabulary, the
encoding (most recent M sentences kept, slots and support shifted with them), and errors.
"""
import pytest
import torch

from helpers import gen
from seqmem.tasks import babi
from seqmem.text import Vocab

TASKS = (1, 2, 16)


# ------------------------------------------------------------------ solvers from the rules

def solve_location(sentences, question):
    """Tasks 1 and 2: (answer, support) by replaying the story; None if the story does not say."""
    at, holder, lying = {}, {}, {}  # person -> (place, i); object -> (person, i); object -> (place, (i, j))
    for i, words in enumerate(sentences):
        person, obj = words[0], words[-1]
        if words[-2:-1] == ["the"] and obj in babi.BABI_PLACES:  # "<person> <verb> to the <place>"
            at[person] = (obj, i)
        elif words[1] in ("picked", "got", "grabbed", "took"):
            holder[obj] = (person, i)
            lying.pop(obj, None)
        else:  # dropped, discarded, put down, left
            place, moved = at.get(person, (None, None))
            lying[obj] = (place, (moved, i))
            holder.pop(obj, None)
    thing = question[-1]
    if question[:3] == ["Where", "is", "the"]:
        if thing in lying:
            return lying[thing]
        if thing not in holder or holder[thing][0] not in at:
            return None, ()
        person, took = holder[thing]
        place, moved = at[person]
        return place, tuple(sorted((took, moved)))
    place, i = at.get(thing, (None, None))
    return place, (i,)


def solve_induction(sentences, question):
    """Task 16: (answer, support, number of other animals of the asked species with a colour)."""
    species, color, said = {}, {}, {}  # name -> species / colour; (name, kind) -> index
    for i, words in enumerate(sentences):
        name = words[0]
        if words[2] == "a":
            species[name], said[name, "species"] = words[3], i
        else:
            color[name], said[name, "color"] = words[2], i
    asked = question[-1]
    kin = [n for n in species if n != asked and species[n] == species.get(asked) and n in color]
    if asked in color or not kin:
        return None, (), len(kin)
    w = kin[0]
    return color[w], tuple(sorted((said[asked, "species"], said[w, "species"], said[w, "color"]))), len(kin)


def solve(task, sentences, question):
    if task == 16:
        return solve_induction(sentences, question)[:2]
    return solve_location(sentences, question)


@pytest.fixture(scope="module")
def stories():
    """300 stories of each task and split."""
    return {(t, s): babi.babi_stories(t, 300, s, gen(t)) for t in TASKS for s in ("train", "test")}


# ------------------------------------------------------------------ answers and support

@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("task", TASKS)
def test_answers_and_support_are_what_the_rules_give(stories, task, split):
    for story in stories[task, split]:
        answer, support = solve(task, story.sentences, story.question)
        assert (story.answer, story.support) == (answer, support), babi.story_text(story)


@pytest.mark.parametrize("task", TASKS)
def test_the_support_alone_decides_the_answer(stories, task):
    for story in stories[task, "train"]:
        kept = [story.sentences[i] for i in story.support]
        assert solve(task, kept, story.question)[0] == story.answer, babi.story_text(story)
        assert len(story.support) == {1: 1, 2: 2, 16: 3}[task]


def test_task_1_support_is_the_persons_last_sentence(stories):
    for story in stories[1, "train"]:
        person = story.question[-1]
        last = max(i for i, words in enumerate(story.sentences) if words[0] == person)
        assert story.support == (last,) and story.sentences[last][-1] == story.answer


def test_task_2_uses_both_held_and_dropped_objects(stories):
    kinds = set()
    for story in stories[2, "train"]:
        deciding = story.sentences[story.support[1]]
        kinds.add("dropped" if deciding[-1] == story.question[-1] and deciding[1] in
                  ("dropped", "discarded", "put", "left") else "held")
    assert kinds == {"held", "dropped"}


def test_task_16_has_one_witness_and_never_says_the_asked_colour(stories):
    for story in stories[16, "train"]:
        answer, _, witnesses = solve_induction(story.sentences, story.question)
        assert witnesses == 1 and answer == story.answer


def test_task_1_is_not_answered_by_the_last_sentence(stories):
    """The asked person is often not the last one to move: the network must find them."""
    last = sum(s.support == (len(s.sentences) - 1,) for s in stories[1, "train"]) / 300
    assert last < 0.6


def test_the_slide_story():
    story = babi.SLIDE_STORY
    assert babi.story_text(story).splitlines()[0] == "Brian is a frog."
    assert solve(16, story.sentences, story.question) == ("yellow", (0, 2, 4)) == (story.answer, story.support)


# ------------------------------------------------------------------ seeds, splits, lengths

@pytest.mark.parametrize("task", TASKS)
def test_a_seed_fixes_the_stories(task):
    a, b = (babi.babi_stories(task, 20, "train", gen(3)) for _ in range(2))
    c = babi.babi_stories(task, 20, "train", gen(4))
    assert a == b and a != c


@pytest.mark.parametrize("task", TASKS)
def test_splits_never_share_a_story(task):
    train = {babi.story_text(s) for s in babi.babi_stories(task, 2000, "train", gen(0))}
    test = {babi.story_text(s) for s in babi.babi_stories(task, 400, "test", gen(0))}  # the same seed
    assert not train & test
    assert all(babi.babi_split(s) == "test" for s in babi.babi_stories(task, 50, "test", gen(1)))


@pytest.mark.parametrize("task", TASKS)
def test_story_lengths_cover_their_range(stories, task):
    low, high = babi.BABI_TASKS[task][1]
    counts = {len(s.sentences) for s in stories[task, "train"]}
    assert counts == set(range(low, high + 1))
    short = babi.babi_stories(task, 30, "train", gen(2), lengths=(5, 6))
    assert {len(s.sentences) for s in short} <= {5, 6}


@pytest.mark.parametrize("task", TASKS)
def test_every_word_is_in_the_task_vocabulary(stories, task):
    vocab, everything = babi.babi_vocab(task), babi.babi_vocab()
    assert vocab.tokens[0] == babi.NIL and vocab.other is None and everything.tokens[0] == babi.NIL
    for story in stories[task, "train"] + stories[task, "test"]:
        words = {w for s in story.sentences for w in s} | set(story.question) | {story.answer}
        assert words <= set(vocab.tokens) and words <= set(everything.tokens)


# ------------------------------------------------------------------ encoding

def test_encoding_keeps_the_most_recent_sentences():
    stories = babi.babi_stories(2, 6, "train", gen(5), lengths=(12, 20))
    vocab, M = babi.babi_vocab(2), 8
    batch = babi.encode_stories(stories, vocab, M)
    L = max(len(w) for s in stories for w in s.sentences + [s.question])
    assert batch.stories.shape == (6, M, L) and batch.queries.shape == (6, L) and batch.answers.shape == (6,)
    assert batch.mask.all() and batch.stories.dtype == torch.long
    for b, story in enumerate(stories):
        kept = story.sentences[-M:]
        for slot, words in enumerate(kept):
            assert vocab.decode(batch.stories[b, slot, : len(words)]) == words
            assert not batch.stories[b, slot, len(words):].any()
        first = len(story.sentences) - M
        assert batch.support[b].nonzero().flatten().tolist() == [i - first for i in story.support if i >= first]
        assert vocab.decode(batch.answers[b:b + 1]) == [story.answer]
        assert vocab.decode(batch.queries[b, : len(story.question)]) == story.question


def test_encoding_pads_short_stories_with_empty_slots():
    stories = babi.babi_stories(1, 4, "train", gen(6), lengths=(2, 5))
    batch = babi.encode_stories(stories, babi.babi_vocab(1), 10)
    n = torch.tensor([len(s.sentences) for s in stories])
    assert torch.equal(batch.mask, torch.arange(10) < n[:, None])
    assert not batch.stories[~batch.mask].any() and not batch.support[~batch.mask].any()
    assert batch.support.sum(1).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("call, message", [
    (lambda: babi.babi_stories(3, 5), "task must be one of"),
    (lambda: babi.babi_stories(True, 5), "task must be one of"),
    (lambda: babi.babi_stories(1, 0), "n must be a positive int"),
    (lambda: babi.babi_stories(1, 5, "valid"), "split must be 'train' or 'test'"),
    (lambda: babi.babi_stories(16, 5, lengths=(4, 9)), "lengths must be"),
    (lambda: babi.babi_stories(1, 5, lengths=(6, 3)), "lengths must be"),
    (lambda: babi.babi_vocab(7), "task must be one of"),
    (lambda: babi.encode_stories([], babi.babi_vocab(), 5), "non-empty list of Story"),
    (lambda: babi.encode_stories([babi.SLIDE_STORY], babi.babi_vocab(), 0), "memory_size must be"),
    (lambda: babi.encode_stories([babi.SLIDE_STORY], Vocab(["a"]), 5), "nil word"),
])
def test_bad_arguments_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_task_16_is_ordered_as_babi_writes_it(stories):
    """As in bAbI's files (and the lecture's story): the asked animal's species is the last
    sentence, and no animal's colour comes before its species."""
    for story in stories[16, "train"]:
        last = story.sentences[-1]
        assert last[0] == story.question[-1] and last[2] == "a", babi.story_text(story)
        seen = set()
        for words in story.sentences:
            if words[2] == "a":
                seen.add(words[0])
            else:
                assert words[0] in seen or not any(w[0] == words[0] and w[2] == "a" for w in story.sentences), \
                    babi.story_text(story)
