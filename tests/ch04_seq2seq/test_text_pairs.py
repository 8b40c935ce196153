"""seqmem.text for sequence to sequence (chapter 4): the special tokens, pairs padded into a batch,
and a decoder's output cut at its first EOS."""
import pytest
import torch

from seqmem import text
from seqmem.text import BOS_ID, EOS_ID, PAD_ID


def test_seq2seq_vocab_puts_the_special_tokens_first():
    vocab = text.seq2seq_vocab(["x", "y"])
    assert vocab.tokens == ["<pad>", "<bos>", "<eos>", "x", "y"] and vocab.other is None
    assert [vocab.index(t) for t in (text.PAD, text.BOS, text.EOS)] == [PAD_ID, BOS_ID, EOS_ID] == [0, 1, 2]
    with pytest.raises(KeyError):
        vocab.index("z")  # closed: no "other"
    with pytest.raises(ValueError, match="special"):
        text.seq2seq_vocab(["x", "<eos>"])


def test_encode_pairs_pads_and_ends_targets_with_eos():
    vocab = text.seq2seq_vocab("abc")  # a=3, b=4, c=5
    pairs = text.encode_pairs([("ab", "cba"), ("c", "")], vocab, vocab, device="cpu")
    assert pairs.source.ids.tolist() == [[3, 4], [5, PAD_ID]]  # no EOS on the source
    assert pairs.source.lengths.tolist() == [2, 1] and pairs.source.mask.tolist() == [[True, True], [True, False]]
    assert pairs.target.ids.tolist() == [[5, 4, 3, EOS_ID], [EOS_ID, PAD_ID, PAD_ID, PAD_ID]]
    assert pairs.target.lengths.tolist() == [4, 1] and pairs.target.ids.dtype == torch.long
    assert BOS_ID not in pairs.target.ids  # the decoder prepends BOS itself
    assert pairs.source_text == ["a b", "c"] and pairs.target_text == ["c b a", ""]  # default: joined with spaces


def test_encode_pairs_checks_its_arguments():
    vocab = text.seq2seq_vocab("ab")
    with pytest.raises(ValueError, match="seq2seq_vocab"):
        text.encode_pairs([("a", "b")], text.Vocab("ab"), vocab)  # id 0 would not be padding
    with pytest.raises(ValueError, match="one text per pair"):
        text.encode_pairs([("a", "b")], vocab, vocab, source_text=["a", "b"])
    with pytest.raises(ValueError, match="non-empty"):
        text.encode_pairs([], vocab, vocab)
    with pytest.raises(KeyError):
        text.encode_pairs([("a", "z")], vocab, vocab)


def test_strip_special_cuts_at_the_first_eos():
    assert text.strip_special([1, 5, 6, 2, 7, 2]) == [5, 6]
    assert text.strip_special(torch.tensor([5, 0, 6, 1])) == [5, 6]  # no EOS: everything but PAD and BOS
    assert text.strip_special([2, 5]) == [] and text.strip_special([]) == []
    vocab = text.seq2seq_vocab("abc")
    assert vocab.decode(text.strip_special(torch.tensor([1, 3, 4, 2, 0]))) == ["a", "b"]
    with pytest.raises(ValueError, match=r"\(T,\)"):
        text.strip_special(torch.zeros(2, 3, dtype=torch.long))
