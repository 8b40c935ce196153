"""What the chapter 4 tests share: a reversal task built here, small seq2seq models, a trained one.

Token ids: 0 padding, 1 <bos>, 2 <eos> (the library's special ids), symbols 3 ... 3 + SYMBOLS - 1.
"""
import functools

import torch

import seqmem
from helpers import random_reversal

SYMBOLS = 5
V = 3 + SYMBOLS


def reversal(g, batch_size, min_len=3, max_len=6):
    """B random strings of min_len..max_len symbols, and their reversals followed by <eos>: two Padded."""
    return random_reversal(g, batch_size, min_len, max_len, SYMBOLS)


def gru_seq2seq(seed=0, E=16, H=32, bidirectional=False):
    """A GRU encoder (a drop-in seqmem.GRU) and a GRUCell decoder, bridged."""
    torch.manual_seed(seed)
    encoder = seqmem.Encoder(V, E, seqmem.GRU(E, H, batch_first=True, bidirectional=bidirectional))
    decoder = seqmem.Decoder(V, E, seqmem.GRUCell(E, H), context_size=encoder.context_size)
    return seqmem.Seq2Seq(encoder, decoder)


@functools.lru_cache(maxsize=None)
def trained_reversal(seed=0, steps=400):
    """gru_seq2seq(seed) trained on reversal with teacher forcing: 'steps' Adam steps (lr 1e-2) of 64 strings."""
    model = gru_seq2seq(seed, H=64)
    g = torch.Generator().manual_seed(seed)
    seqmem.fit(model, lambda i: reversal(g, 64), seqmem.seq2seq_loss, steps=steps, lr=1e-2, progress=False)
    return model.eval()


def exact_match(model, n=500, seed=123, decode=None):
    """The fraction of n fresh reversal sources whose greedy decoding is exactly the reversal."""
    source, target = reversal(torch.Generator().manual_seed(seed), n)
    decode = decode or (lambda m, ids, lengths: seqmem.greedy(m, ids, lengths, max_len=10))
    outputs = decode(model, source.ids, source.lengths)
    truth = [row[:m - 1] for row, m in zip(target.ids.tolist(), target.lengths.tolist())]  # without <eos>
    return sum(o == t for o, t in zip(outputs, truth)) / len(truth)
