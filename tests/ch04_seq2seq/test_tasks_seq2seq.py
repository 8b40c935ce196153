"""The other sequence-to-sequence tasks of chapter 4: copying and reversing letter strings
(seqmem.tasks.algorithmic) and captioning digit images (seqmem.tasks.digits)."""
from collections import Counter

import pytest
import torch

from helpers import gen
from seqmem import tasks, text


def decode(vocab, padded, b):
    return "".join(vocab.decode(text.strip_special(padded.ids[b])))


@pytest.mark.parametrize("make, turn", [(tasks.copy_tokens, lambda s: s), (tasks.reverse_tokens, lambda s: s[::-1])])
def test_symbol_tasks_pair_a_string_with_its_copy_or_reverse(make, turn):
    pairs = make(300, (2, 6), n_symbols=5, generator=gen(1))
    vocab = tasks.symbol_vocab(5)
    lengths = pairs.source.lengths
    assert 2 <= lengths.min() and lengths.max() <= 6 and set(lengths.tolist()) == {2, 3, 4, 5, 6}
    assert pairs.source.ids.shape == (300, 6) and pairs.target.ids.shape == (300, 7)
    assert torch.equal(pairs.target.lengths, lengths + 1)
    assert torch.all(pairs.target.ids[torch.arange(300), lengths] == text.EOS_ID)
    letters = Counter()
    for b in range(300):
        source = decode(vocab, pairs.source, b)
        letters.update(source)
        assert source == pairs.source_text[b] and decode(vocab, pairs.target, b) == turn(source) == pairs.target_text[b]
    assert set(letters) == set("abcde")  # the first 5 letters, every one used


def test_copy_and_reverse_draw_the_same_sources_and_are_seeded():
    copy, rev = tasks.copy_tokens(50, generator=gen(2)), tasks.reverse_tokens(50, generator=gen(2))
    assert torch.equal(copy.source.ids, rev.source.ids) and not torch.equal(copy.target.ids, rev.target.ids)
    again = tasks.copy_tokens(50, generator=gen(2))
    assert torch.equal(again.target.ids, copy.target.ids) and again.source_text == copy.source_text
    assert tasks.copy_tokens(50, generator=gen(3)).source_text != copy.source_text
    assert tasks.symbol_vocab(3).tokens == ["<pad>", "<bos>", "<eos>", "a", "b", "c"]


@pytest.mark.parametrize("kwargs, match", [(dict(length=(0, 3)), "length"), (dict(length=(5, 3)), "length"),
                                           (dict(length=(1.0, 3)), "length"), (dict(n_symbols=27), "26"),
                                           (dict(n_symbols=0), "positive int"), (dict(batch_size=0), "positive int")])
def test_symbol_tasks_reject_bad_arguments(kwargs, match):
    args = dict(batch_size=4) | kwargs
    with pytest.raises(ValueError, match=match):
        tasks.reverse_tokens(**args)


# ------------------------------------------------------------------ digit captions


@pytest.mark.parametrize("split", ["train", "test"])
def test_digit_captions_name_the_digits_of_the_image(split):
    images, labels = tasks.digit_images(split)
    known = Counter()
    for im, label in zip(images, labels):
        known[tuple(im.flatten().tolist())] = int(label)
    caps = tasks.digit_captions(64, (1, 3), split, generator=gen(4))
    assert caps.images.shape == (64, 8, 24) and caps.images.dtype == torch.float32
    vocab = tasks.caption_vocab()
    words = "zero one two three four five six seven eight nine".split()
    for b in range(64):
        caption = vocab.decode(text.strip_special(caps.target.ids[b]))
        assert " ".join(caption) == caps.target_text[b] and 1 <= len(caption) <= 3
        assert caps.target.ids[b, len(caption)] == text.EOS_ID
        for k in range(3):
            tile = caps.images[b, :, 8 * k: 8 * k + 8]
            if k < len(caption):  # an image of this split, of the digit the caption names
                assert words[known[tuple(tile.flatten().tolist())]] == caption[k]
            else:
                assert torch.all(tile == 0)
    assert caps.target.ids.shape[1] == int(caps.target.lengths.max()) <= 4


def test_digit_captions_are_seeded_and_check_arguments(dev):
    a, b = tasks.digit_captions(16, generator=gen(5), device=dev), tasks.digit_captions(16, generator=gen(5))
    assert a.images.device.type == a.target.ids.device.type == dev.type
    assert torch.equal(a.images.cpu(), b.images) and a.target_text == b.target_text
    assert tasks.digit_captions(16, generator=gen(6)).target_text != b.target_text
    assert tasks.caption_vocab().index("three") == 6
    with pytest.raises(ValueError, match="n_digits"):
        tasks.digit_captions(4, (0, 2))
    with pytest.raises(ValueError, match="split"):
        tasks.digit_captions(4, split="dev")
