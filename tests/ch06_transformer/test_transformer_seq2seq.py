"""seqmem.TransformerSeq2Seq and label smoothing (chapter 6).

The model: logits of the right shape; the causal mask (a target token changed after t leaves the
logits up to t exactly as they were, and changes a later one); the source's padding (padding a
source with junk and giving its length changes nothing); forward equal to logits of the shifted
target; greedy decoding equal to an argmax loop written here; beam search runs on it; bad input a
clear error; a tiny copy task learned in a few seconds. Label smoothing: equal to torch's
cross_entropy with label_smoothing where that is finite, written out by hand on a small case,
finite on -inf logits, huge logits and an all-padding batch.
"""
import math
from functools import partial

import pytest
import torch
from torch.nn import functional as F

import seqmem
from seqmem import tasks
from seqmem.text import BOS_ID, EOS_ID
from seqmem.transformer_seq2seq import TransformerSeq2Seq, label_smoothing_loss, smoothed_seq2seq_loss
from helpers import gen

VS, VT, D = 9, 11, 16


def small(dev, **options):
    torch.manual_seed(0)
    cfg = dict(d_model=D, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32, dropout=0.1,
               max_len=32)
    cfg.update(options)
    return TransformerSeq2Seq(VS, VT, **cfg).to(dev, torch.float64).eval()


def ids(g, B, T, V, dev):
    return torch.randint(3, V, (B, T), generator=g).to(dev)


def test_shapes_and_forward_is_shifted_logits(dev):
    model, g = small(dev), gen(0)
    src, tgt = ids(g, 3, 5, VS, dev), ids(g, 3, 7, VT, dev)
    logits = model(src, None, tgt)
    assert logits.shape == (3, 7, VT) and logits.dtype == torch.float64
    shifted = torch.cat([torch.full((3, 1), BOS_ID, device=dev), tgt[:, :-1]], 1)
    torch.testing.assert_close(logits, model.logits(src, None, shifted))


def test_causal_mask(dev):
    model, g = small(dev), gen(1)
    src, tgt_in = ids(g, 2, 5, VS, dev), ids(g, 2, 6, VT, dev)
    with torch.no_grad():
        before = model.logits(src, None, tgt_in)
        for t in range(5):
            changed = tgt_in.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] - 3 + 1) % (VT - 3) + 3  # every later token different
            after = model.logits(src, None, changed)
            torch.testing.assert_close(after[:, :t + 1], before[:, :t + 1], rtol=0, atol=1e-12)
            assert (after[:, t + 1:] - before[:, t + 1:]).abs().max() > 1e-6  # the later logits do see it


def test_source_padding_changes_nothing(dev):
    model, g = small(dev), gen(2)
    src, tgt = ids(g, 2, 4, VS, dev), ids(g, 2, 5, VT, dev)
    junk = torch.cat([src, ids(g, 2, 3, VS, dev)], 1)  # 3 junk tokens after the real 4
    lengths = torch.tensor([4, 4], device=dev)
    with torch.no_grad():
        torch.testing.assert_close(model(junk, lengths, tgt), model(src, None, tgt), rtol=0, atol=1e-10)
        ragged = torch.cat([src[:1], ids(g, 1, 4, VS, dev)])  # two sources: 2 real tokens then junk, 4 real
        one = model(ragged, torch.tensor([2, 4], device=dev), tgt)
        torch.testing.assert_close(one[:1], model(src[:1, :2], None, tgt[:1]), rtol=0, atol=1e-10)


def argmax_loop(model, src, lengths, max_len):
    """Greedy by hand: feed <bos>, then each argmax, through logits(); cut at <eos>."""
    outs = []
    for b in range(src.shape[0]):
        s = src[b:b + 1, :int(lengths[b])]
        prefix = [BOS_ID]
        for _ in range(max_len):
            nxt = int(model.logits(s, None, torch.tensor([prefix], device=src.device))[0, -1].argmax())
            if nxt == EOS_ID:
                break
            prefix.append(nxt)
        outs.append(prefix[1:])
    return outs


def test_greedy_is_the_argmax_loop_and_beam_runs(dev):
    model, g = small(dev, dropout=0.0), gen(3)
    with torch.no_grad():
        model.generator.bias[EOS_ID] += 1.5  # so that some samples stop before max_len
    src = ids(g, 4, 6, VS, dev)
    lengths = torch.tensor([6, 3, 5, 1], device=dev)
    got = seqmem.greedy(model, src, lengths, max_len=8)
    with torch.no_grad():
        assert got == argmax_loop(model, src, lengths, 8)
    assert any(len(o) < 8 for o in got)
    assert seqmem.beam_search(model, src, lengths, beam_size=1, max_len=8) == got  # K = 1 is greedy
    beams = seqmem.beam_hypotheses(model, src, lengths, beam_size=3, max_len=8)
    assert all(len(pool) == 3 for pool in beams)


def test_options_and_errors():
    tied = TransformerSeq2Seq(VT, VT, d_model=D, nhead=2, share_embeddings=True, tie_generator=True)
    assert tied.source_embedding is tied.target_embedding
    assert tied.generator.weight is tied.target_embedding.weight
    assert (tied.target_embedding.weight[0] == 0).all()  # the padding's row
    model = small("cpu")
    src = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match="divisible"):
        TransformerSeq2Seq(VS, VT, d_model=10, nhead=3)
    with pytest.raises(ValueError, match="one size"):
        TransformerSeq2Seq(VS, VT, share_embeddings=True)
    with pytest.raises(ValueError, match="integer token ids"):
        model(src.double(), None, src)
    with pytest.raises(ValueError, match="batch size"):
        model(src, None, torch.tensor([[3], [4]]))
    with pytest.raises(ValueError, match="ids in"):
        model(torch.tensor([[3, VS]]), None, src)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.full((1, 40), 3), None, src)
    with pytest.raises(ValueError, match="at least one token"):
        model(src, torch.tensor([0]), src)
    with pytest.raises(ValueError, match="lengths must"):
        model(src, torch.tensor([4]), src)
    with pytest.raises(ValueError, match="teacher forcing"):
        model(src, None, src, teacher_forcing=0.5)
    with pytest.raises(ValueError, match=r"tokens must be a tensor of shape \(1,\)"):
        model.step(model.start(src), torch.tensor([1, 1]))


# -- label smoothing ----------------------------------------------------------------------------


def test_label_smoothing_by_hand():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    targets = torch.tensor([1, -100])
    p = [math.exp(1.0), math.exp(2.0), math.exp(0.5)]
    log_p = [math.log(x / sum(p)) for x in p]
    eps = 0.3
    expected = -(1 - eps) * log_p[1] - eps / 3 * sum(log_p)  # the second row is ignored
    assert label_smoothing_loss(logits, targets, eps).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_label_smoothing_equals_torch(dev, eps):
    g = gen(4)
    logits = (3 * torch.randn(4, 6, 13, generator=g, dtype=torch.float64)).to(dev).requires_grad_()
    targets = torch.randint(13, (4, 6), generator=g).to(dev)
    targets[0, 3:] = 0
    ours = label_smoothing_loss(logits, targets, eps, ignore_index=0)
    ref = F.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1), ignore_index=0, label_smoothing=eps)
    torch.testing.assert_close(ours, ref)
    g_ours, = torch.autograd.grad(ours, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref)
    if eps == 0.0:
        torch.testing.assert_close(ours, F.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1), ignore_index=0))


def test_label_smoothing_stays_finite(dev):
    logits = torch.randn(5, 7, generator=gen(5)).to(dev)
    logits[:, 4] = float("-inf")  # a token ruled out everywhere
    logits[0, 1] = float("-inf")  # and the target of sample 0
    logits[2] = float("-inf")  # a row with every token ruled out
    logits = logits.requires_grad_()
    targets = torch.tensor([1, 2, 3, 0, 6], device=dev)
    assert not torch.isfinite(F.cross_entropy(logits, targets, label_smoothing=0.1))  # torch: inf or NaN
    loss = label_smoothing_loss(logits, targets, 0.1)
    assert torch.isfinite(loss) and loss > 0
    grad, = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all()
    huge = torch.tensor([[3e38, -3e38, 0.0], [1e4, 0.0, -1e4]], device=dev, requires_grad=True)
    loss = label_smoothing_loss(huge, torch.tensor([1, 2], device=dev), 0.1)
    assert torch.isfinite(loss) and torch.isfinite(torch.autograd.grad(loss, huge)[0]).all()
    finite = torch.tensor([[1e4, 0.0, -1e4]], device=dev)  # large but finite in torch too: the same value
    torch.testing.assert_close(label_smoothing_loss(finite, torch.tensor([2], device=dev), 0.1),
                               F.cross_entropy(finite, torch.tensor([2], device=dev), label_smoothing=0.1))
    all_pad = torch.randn(2, 3, 5, device=dev, requires_grad=True)
    loss = label_smoothing_loss(all_pad, torch.full((2, 3), -100, device=dev), 0.1)
    assert loss.item() == 0.0
    assert (torch.autograd.grad(loss, all_pad)[0] == 0).all()


def test_label_smoothing_errors():
    x = torch.zeros(2, 3)
    for bad, match in [(dict(logits=x, targets=torch.zeros(3, dtype=torch.long)), "leading dimensions"),
                       (dict(logits=x, targets=torch.zeros(2)), "integer"),
                       (dict(logits=x.long(), targets=torch.zeros(2, dtype=torch.long)), "floating"),
                       (dict(logits=x, targets=torch.tensor([0, 3])), r"in \[0, 3\)"),
                       (dict(logits=x, targets=torch.tensor([0, 1]), epsilon=1.0), "epsilon"),
                       (dict(logits=torch.tensor([[0.0, float("nan"), 1.0]]), targets=torch.tensor([0])), "NaN")]:
        with pytest.raises(ValueError, match=match):
            label_smoothing_loss(**bad)


def test_learns_to_copy():
    """A tiny copy task (letters a-e, 1-5 long) learned in a few seconds: greedy copies 95% of 100 exactly."""
    torch.manual_seed(0)
    V = len(tasks.symbol_vocab(5))
    model = TransformerSeq2Seq(V, V, d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                               dim_feedforward=64, dropout=0.0, max_len=16)
    g = gen(6)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    seqmem.fit(model, lambda step: tasks.copy_tokens(64, (1, 5), n_symbols=5, generator=g),
               partial(smoothed_seq2seq_loss, epsilon=0.1), steps=300, optimizer=optimizer, progress=False)
    test = tasks.copy_tokens(100, (1, 5), n_symbols=5, generator=gen(7))
    out = seqmem.greedy(model.eval(), test.source.ids, test.source.lengths, max_len=8)
    truth = [row[:n - 1] for row, n in zip(test.target.ids.tolist(), test.target.lengths.tolist())]
    assert seqmem.metrics.exact_match(out, truth) >= 0.95
