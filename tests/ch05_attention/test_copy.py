"""seqmem.copy (chapter 5): the pointer-generator's extended vocabulary, mixture, decoder and loss.

Pinned here: the extended ids of a source and a target written out by hand (a repeated OOV word
keeps its id, a target word absent from vocabulary and source is <unk>); the mixture sums to one
and equals a loop over the source positions, repeated tokens and padding included, with gradients
by gradcheck; the loss and its gradients stay finite when p_gen is 1 and the target can only be
copied; every bad input is a ValueError; a decoder step is See et al.'s equations from an
AttentionDecoder's pieces; greedy and beam search decode the model unchanged; and, on template
sentences whose test names are never seen, copying reaches what a fixed vocabulary cannot.
"""
import pytest
import torch

import seqmem
from helpers import gen
from seqmem import tasks
from seqmem.copy import (EPS, UNK, UNK_ID, CopyDecoder, CopySeq2Seq, copy_distribution, copy_loss, copy_nll,
                         copy_vocab, decode_extended, encode_copy_pairs, extend_source, extend_target, to_fixed)
from seqmem.text import EOS_ID, PAD_ID

VOCAB = copy_vocab(["call", "please", "tomorrow", "hello"])  # V = 8
V = len(VOCAB)


# -- the extended vocabulary -----------------------------------------------------------------------


def test_extended_ids_by_hand():
    ids, oovs = extend_source("please call Zed and Ama and Zed".split(), VOCAB)
    assert V == 8 and VOCAB.index(UNK) == UNK_ID == 3
    assert oovs == ["Zed", "and", "Ama"]
    assert ids == [5, 4, 8, 9, 10, 9, 8]  # Zed twice: 8 both times
    assert extend_target("hello Ama Zed Bob".split(), VOCAB, oovs) == [7, 10, 8, UNK_ID]  # Bob: not copyable
    assert decode_extended([7, 10, 8, 3], VOCAB, oovs) == ["hello", "Ama", "Zed", UNK]
    torch.testing.assert_close(to_fixed(torch.tensor(ids), V), torch.tensor([5, 4, 3, 3, 3, 3, 3]))


def test_encode_copy_pairs():
    pairs = [("please call Zed".split(), "call Zed".split()), ("hello Ama Bo Ama".split(), "Bo Ama".split())]
    batch = encode_copy_pairs(pairs, VOCAB)
    assert batch.oovs == [["Zed"], ["Ama", "Bo"]]
    torch.testing.assert_close(batch.source.ids, torch.tensor([[5, 4, 8, 0], [7, 8, 9, 8]]))
    torch.testing.assert_close(batch.target.ids, torch.tensor([[4, 8, EOS_ID], [9, 8, EOS_ID]]))
    assert batch.source.lengths.tolist() == [3, 4] and batch.target_text == ["call Zed", "Bo Ama"]


def test_extended_vocabulary_errors():
    with pytest.raises(ValueError, match="copy_vocab"):
        extend_source(["a"], seqmem.text.seq2seq_vocab(["a"]))  # no <unk>
    with pytest.raises(ValueError, match="must not include"):
        copy_vocab([UNK, "a"])
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        decode_extended([9], VOCAB, ["Zed"])
    with pytest.raises(ValueError, match="integer"):
        to_fixed(torch.zeros(3), V)


# -- the mixture -----------------------------------------------------------------------------------


def _inputs(g, B=4, S=7, Vf=6, n_oov=3, dtype=torch.float64, dev="cpu"):
    """Random distributions; sources with repeated ids (drawn from few), OOV ids and padding at the end."""
    p_vocab = torch.softmax(torch.randn(B, Vf, generator=g, dtype=dtype), -1)
    ids = torch.randint(1, Vf + n_oov, (B, S), generator=g)  # repeats: S draws from Vf + n_oov - 1 ids
    ids[0, :3] = Vf  # an OOV word three times
    lengths = torch.tensor([S, S - 2, 3, 1][:B])
    mask = torch.arange(S) < lengths[:, None]  # (B, S)
    ids = ids.masked_fill(~mask, PAD_ID)
    attention = seqmem.masked_softmax(torch.randn(B, S, generator=g, dtype=dtype), mask)  # 0 at the padding
    p_gen = torch.rand(B, 1, generator=g, dtype=dtype)
    return [t.to(dev) for t in (p_vocab, attention, ids, p_gen)] + [Vf + n_oov]


def _loop(p_vocab, attention, ids, p_gen, extended):
    """P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{j: x_j = w} alpha_j, entry by entry."""
    B, Vf = p_vocab.shape
    out = torch.zeros(B, extended, dtype=p_vocab.dtype)
    for b in range(B):
        for w in range(extended):
            generate = p_vocab[b, w] if w < Vf else 0.0
            copy = sum(attention[b, j] for j in range(ids.shape[1]) if ids[b, j] == w)
            out[b, w] = p_gen[b, 0] * generate + (1 - p_gen[b, 0]) * copy
    return out


def test_mixture_sums_to_one_and_is_the_loop(dev):
    for seed in range(3):
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
            p_vocab, attention, ids, p_gen, ext = _inputs(gen(seed), dtype=dtype, dev=dev.type)
            P = copy_distribution(p_vocab, attention, ids, p_gen, ext)
            assert P.shape == (4, ext) and P.device == dev and (P >= 0).all()
            torch.testing.assert_close(P.sum(-1), torch.ones(4, dtype=dtype, device=dev), rtol=0, atol=tol)
        args = [t.cpu() for t in (p_vocab, attention, ids, p_gen)]
        torch.testing.assert_close(P.cpu(), _loop(*args, ext).float())
        assert P[0, 6] >= (1 - p_gen[0, 0]) * attention[0, :3].sum() - 1e-6  # the repeated OOV word accumulates
        torch.testing.assert_close(copy_distribution(p_vocab, attention, ids, p_gen[:, 0], ext), P)  # p_gen (B,)


def test_mixture_gradients_by_gradcheck():
    p_vocab, attention, ids, p_gen, ext = _inputs(gen(1))
    leaves = [t.detach().requires_grad_() for t in (p_vocab, attention, p_gen)]
    f = lambda pv, a, pg: copy_distribution(pv, a, ids, pg, ext, pad_id=None)  # perturbations leave the padding
    assert torch.autograd.gradcheck(f, leaves)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_and_gradients_finite_when_p_gen_is_one_and_the_target_only_copyable(dtype):
    p_vocab, attention, ids, _, ext = _inputs(gen(2), dtype=dtype)
    z = torch.full((4, 1), 200.0, dtype=dtype, requires_grad=True)  # sigmoid(200) is 1.0 exactly
    logits = torch.log(p_vocab).detach().requires_grad_()
    P = copy_distribution(torch.softmax(logits, -1), attention, ids, torch.sigmoid(z), ext)
    targets = torch.full((4, 1), 6)  # the OOV word at source[0, :3]: reachable only by copying
    assert (P[:, 6] == 0).any()  # p_gen = 1: the copy part is gone, P(target) = 0 somewhere
    loss = copy_nll(P[:, None], targets)
    loss.backward()
    assert torch.isfinite(loss) and loss <= -torch.log(torch.tensor(EPS, dtype=dtype)) + 1e-3
    assert torch.isfinite(z.grad).all() and torch.isfinite(logits.grad).all()


def test_copy_nll_is_the_masked_mean():
    p_vocab, attention, ids, p_gen, ext = _inputs(gen(3))
    P = copy_distribution(p_vocab, attention, ids, p_gen, ext).view(2, 2, ext)  # (B, T, V')
    targets = torch.tensor([[6, 1], [2, 8]])
    mask = torch.tensor([[True, True], [False, True]])
    expected = -(torch.log(P[0, 0, 6] + EPS) + torch.log(P[0, 1, 1] + EPS) + torch.log(P[1, 1, 8] + EPS)) / 3
    torch.testing.assert_close(copy_nll(P, targets, mask), expected)
    with pytest.raises(ValueError, match="below V'"):
        copy_nll(P, torch.full((2, 2), ext), mask)
    with pytest.raises(ValueError, match="leading dimensions"):
        copy_nll(P, targets[:, :1])


def test_mixture_errors():
    p_vocab, attention, ids, p_gen, ext = _inputs(gen(4))
    ok = dict(p_vocab=p_vocab, attention=attention, source_ext_ids=ids, p_gen=p_gen, extended_size=ext)
    bad = [
        (dict(p_vocab=p_vocab[None]), r"p_vocab must be floating probabilities of shape \(B, V\)"),
        (dict(p_vocab=ids.double()[:, :6].long()), "p_vocab must be floating"),
        (dict(attention=attention[:3]), r"attention must have shape \(B, S\) with B = 4"),
        (dict(source_ext_ids=ids[:, :5]), "source_ext_ids must be integer ids of the attention's shape"),
        (dict(source_ext_ids=ids.double()), "dtype torch.float64"),
        (dict(p_gen=p_gen[:2]), r"p_gen must have shape \(B, 1\) or \(B,\)"),
        (dict(p_gen=p_gen.float()), "p_gen must share p_vocab's dtype"),
        (dict(extended_size=5), "extended_size must be an int >= V = 6"),
        (dict(extended_size=8), r"source_ext_ids must lie in \[0, extended_size\) = \[0, 8\)"),
        (dict(source_ext_ids=ids.masked_fill(ids == 6, -1)), "must lie in"),
        (dict(attention=torch.full_like(attention, 1 / 7)), "attention must be 0 at the source's padding"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            copy_distribution(**{**ok, **change})


# -- the decoder -----------------------------------------------------------------------------------


E, H = 8, 12


def _models(style="bahdanau", seed=0):
    """A copy model and an AttentionDecoder model sharing every parameter the latter has (float64)."""
    torch.manual_seed(seed)
    enc = seqmem.Encoder(V, E, seqmem.GRU(E, H, batch_first=True, bidirectional=True))
    M = enc.output_size
    fed = M if style == "bahdanau" else H
    dec = CopyDecoder(V, E, seqmem.GRUCell(E + fed, H), M, seqmem.AdditiveScore(H, M, H), style,
                      context_size=enc.context_size)
    for p in (dec.w_c.weight, dec.w_s.weight, dec.w_x.weight, dec.b):
        torch.nn.init.normal_(p)  # far from 0: p_gen varies
    copy = CopySeq2Seq(enc, dec).double()
    plain = seqmem.Seq2Seq(seqmem.Encoder(V, E, seqmem.GRU(E, H, batch_first=True, bidirectional=True)),
                           seqmem.AttentionDecoder(V, E, seqmem.GRUCell(E + fed, H), M, seqmem.AdditiveScore(H, M, H),
                                                   style, context_size=enc.context_size)).double()
    plain.load_state_dict({k: v for k, v in copy.state_dict().items() if k in plain.state_dict()})
    return copy, plain


def _batch():
    pairs = [("please Zed call Zed tomorrow".split(), "call Zed Bo".split()),
             ("hello Ama".split(), "Ama hello Ama".split()),
             ("Kip Lu call".split(), "Lu Kip".split())]
    return encode_copy_pairs(pairs, VOCAB)


@pytest.mark.parametrize("style", ["bahdanau", "luong"])
def test_a_step_is_the_pointer_generator_on_the_attention_decoder(style):
    copy, plain = _models(style)
    batch = _batch()
    src, tgt = batch.source, batch.target
    with torch.no_grad():
        log_P, weights, p_gen = copy(src.ids, src.lengths, tgt.ids, return_weights=True, return_p_gen=True)
    ext = V + max(map(len, batch.oovs))
    assert log_P.shape == (3, tgt.ids.shape[1], ext) and weights.shape == (3, tgt.ids.shape[1], src.ids.shape[1])
    state, tokens, d = plain.start(to_fixed(src.ids, V), src.lengths), torch.full((3,), 1), plain.decoder
    for t in range(tgt.ids.shape[1]):  # the plain decoder's steps, and See et al.'s eqs. (8)-(9) by hand
        e = d.embedding(tokens)  # the OOV previous tokens read as <unk>
        state, logits = plain.step(state, tokens)
        s = state.decoder.cell
        pg = torch.sigmoid(state.decoder.context @ copy.decoder.w_c.weight[0] + s @ copy.decoder.w_s.weight[0]
                           + e @ copy.decoder.w_x.weight[0] + copy.decoder.b)  # (B,)
        torch.testing.assert_close(p_gen[:, t], pg)
        torch.testing.assert_close(weights[:, t], state.decoder.weights)
        P = _loop(torch.softmax(logits, -1), state.decoder.weights, src.ids, pg[:, None], ext)
        torch.testing.assert_close(log_P[:, t], torch.log(P + EPS))
        tokens = to_fixed(tgt.ids[:, t], V)
    assert 0.02 < float(p_gen.min()) and float(p_gen.max()) < 0.995  # both parts matter in this check


def test_greedy_and_beam_search_decode_it_unchanged():
    copy, _ = _models()
    batch = _batch()
    out = seqmem.greedy(copy.eval(), batch.source.ids, batch.source.lengths, max_len=5)
    # greedy's tokens are the argmax of log P fed back (OOV ids included), step by step
    for b, row in enumerate(out):
        state, tokens = copy.start(batch.source.ids[b:b + 1], batch.source.lengths[b:b + 1]), torch.tensor([1])
        for y in row:
            state, log_p = copy.step(state, tokens)
            assert int(log_p.argmax()) == y
            tokens = torch.tensor([y])
    assert seqmem.beam_search(copy, batch.source.ids, batch.source.lengths, 1, 5) == out


def test_decoder_errors():
    enc = seqmem.Encoder(V, E, seqmem.GRU(E, H, batch_first=True, bidirectional=True))
    M = enc.output_size
    with pytest.raises(ValueError, match="unk_id"):
        CopyDecoder(V, E, seqmem.GRUCell(E + M, H), M, seqmem.AdditiveScore(H, M, H), unk_id=V)
    dec = CopyDecoder(V + 1, E, seqmem.GRUCell(E + M, H), M, seqmem.AdditiveScore(H, M, H))
    with pytest.raises(ValueError, match="share one vocabulary"):
        CopySeq2Seq(enc, dec)
    plain = seqmem.AttentionDecoder(V, E, seqmem.GRUCell(E + M, H), M, seqmem.AdditiveScore(H, M, H))
    with pytest.raises(ValueError, match="must be a CopyDecoder"):
        CopySeq2Seq(enc, plain)


# -- learning: unseen names --------------------------------------------------------------------------


def _exact(m, copy, n=300):
    vocab, Vt = tasks.template_vocab(), len(tasks.template_vocab())
    b = tasks.template_pairs(n, "test", gen(99))
    src = b.source.ids if copy else to_fixed(b.source.ids, Vt)
    outs = seqmem.greedy(m.eval(), src, b.source.lengths, max_len=8)
    words = [decode_extended(o, vocab, oov) for o, oov in zip(outs, b.oovs)]
    return sum(" ".join(w) == t for w, t in zip(words, b.target_text)) / n


def test_copying_writes_names_never_seen_and_a_fixed_vocabulary_cannot():
    """Seed 0, 150 Adam steps (lr 1e-2) of 32 template pairs: copy >= 90 % exact on test names, plain <= 5 %."""
    Vt = len(tasks.template_vocab())
    scores = {}
    for copy in (True, False):
        torch.manual_seed(0)
        enc = seqmem.Encoder(Vt, 16, seqmem.GRU(16, 32, batch_first=True, bidirectional=True))
        cls, model, loss = (CopyDecoder, CopySeq2Seq, copy_loss) if copy else \
            (seqmem.AttentionDecoder, seqmem.Seq2Seq, seqmem.seq2seq_loss)
        m = model(enc, cls(Vt, 16, seqmem.GRUCell(16 + 64, 32), 64, seqmem.AdditiveScore(32, 64, 32),
                           context_size=enc.context_size))
        g = gen(0)
        fix = (lambda b: b) if copy else \
            (lambda b: (b.source._replace(ids=to_fixed(b.source.ids, Vt)), b.target._replace(ids=to_fixed(b.target.ids, Vt))))
        seqmem.fit(m, lambda i: fix(tasks.template_pairs(32, "train", g)), loss, steps=150, lr=1e-2,
                   clip_grad_norm=1.0, progress=False)
        scores[copy] = _exact(m, copy)
    assert scores[True] >= 0.9 and scores[False] <= 0.05, scores
