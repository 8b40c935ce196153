"""What the chapter 5 tests share: reversal of long strings built here, attention and plain models, training.

Token ids: 0 padding, 1 <bos>, 2 <eos> (the library's special ids), symbols 3 ... 3 + SYMBOLS - 1.
"""
import functools

import torch

import seqmem
from helpers import random_reversal

SYMBOLS = 8
V = 3 + SYMBOLS


def reversal(g, batch_size, min_len=5, max_len=15):
    """B random strings of min_len..max_len symbols, and their reversals followed by <eos>: two Padded."""
    return random_reversal(g, batch_size, min_len, max_len, SYMBOLS)


def model(style, seed=0, E=16, H=32, cell=seqmem.GRUCell, score=None):
    """A bidirectional GRU encoder (E, H) and a decoder cell of H: plain ("plain"), or attention of ``style``.

    The default scores: Bahdanau's additive (A = H), Luong's bilinear ("general").
    """
    torch.manual_seed(seed)
    encoder = seqmem.Encoder(V, E, seqmem.GRU(E, H, batch_first=True, bidirectional=True))
    M = encoder.output_size
    if style == "plain":
        return seqmem.Seq2Seq(encoder, seqmem.Decoder(V, E, cell(E, H), context_size=encoder.context_size))
    if score is None:
        score = seqmem.AdditiveScore(H, M, H) if style == "bahdanau" else seqmem.BilinearScore(H, M)
    fed = M if style == "bahdanau" else H
    decoder = seqmem.AttentionDecoder(V, E, cell(E + fed, H), M, score, style, context_size=encoder.context_size)
    return seqmem.Seq2Seq(encoder, decoder)


@functools.lru_cache(maxsize=None)
def trained(style, seed=0, steps=100):
    """model(style, seed) trained on reversal: 'steps' Adam steps (lr 1e-2, norm clipped to 1) of 32 strings."""
    m = model(style, seed)
    g = torch.Generator().manual_seed(seed)
    seqmem.fit(m, lambda i: reversal(g, 32), seqmem.seq2seq_loss, steps=steps, lr=1e-2, clip_grad_norm=1.0,
               progress=False)
    return m.eval()


def exact_match(m, n=300, seed=123):
    """The fraction of n fresh sources whose greedy decoding is exactly the reversal."""
    source, target = reversal(torch.Generator().manual_seed(seed), n)
    outputs = seqmem.greedy(m, source.ids, source.lengths, max_len=16)
    truth = [row[:k - 1] for row, k in zip(target.ids.tolist(), target.lengths.tolist())]  # without <eos>
    return sum(o == t for o, t in zip(outputs, truth)) / n
