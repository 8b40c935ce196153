"""seqmem.ctc (chapter 3): the forward recursion equals torch's CTC loss; decoding finds the best
labelling; the label error rate of transcriptions (seqmem.metrics).

The loss is pinned to ``torch.nn.functional.ctc_loss`` in values and gradients (every reduction,
a blank other than 0, repeated labels, padded and concatenated targets, zero_infinity); decoding
is pinned to brute force over every path of small cases.
"""
import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from seqmem import ctc, metrics


def _batch(dev, blank=0, dtype=torch.float64, seed=0):
    """A batch with repeated labels, short inputs, an empty target and a full-length one.

    Every item is feasible: U plus the number of adjacent repeats is at most its input length.
    """
    g = torch.Generator().manual_seed(seed)
    T, C = 12, 5
    labels = [c for c in range(C) if c != blank]
    rows = [[labels[0]] * 3,                       # a a a: needs 5 frames, has 12
            [labels[1], labels[2], labels[2], labels[0]],
            [],                                      # empty target: all blanks
            [labels[3], labels[0], labels[3], labels[1], labels[2]],
            [labels[2], labels[2]]]                  # needs 3 frames, has 3
    input_lengths = torch.tensor([12, 9, 4, 12, 3])
    logits = torch.randn(T, len(rows), C, generator=g, dtype=dtype).to(dev).requires_grad_()
    return logits, rows, input_lengths


def _targets(rows, form, blank):
    lengths = torch.tensor([len(r) for r in rows])
    if form == "concatenated":
        return torch.tensor([c for r in rows for c in r], dtype=torch.long), lengths
    padded = torch.full((len(rows), max(lengths)), blank)  # padding may be anything; blank here
    for n, r in enumerate(rows):
        padded[n, :len(r)] = torch.tensor(r, dtype=torch.long)
    return padded, lengths


@pytest.mark.parametrize("form", ["padded", "concatenated"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("blank", [0, 3])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_ctc_loss_matches_torch_values_and_gradients(reduction, blank, zero_infinity, form, dev):
    logits, rows, input_lengths = _batch(dev, blank)
    targets, target_lengths = _targets(rows, form, blank)
    results = []
    for loss_fn in (ctc.ctc_loss, F.ctc_loss):
        loss = loss_fn(logits.log_softmax(-1), targets.to(dev), input_lengths, target_lengths,
                       blank=blank, reduction=reduction, zero_infinity=zero_infinity)
        # weigh the items differently so that every item's gradient is checked
        w = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype, device=dev).reshape(loss.shape)
        (grad,) = torch.autograd.grad((loss * w).sum(), logits)
        results.append((loss, grad))
    (ours, g_ours), (ref, g_ref) = results
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, ref)  # float64: in fact much closer than 1e-5
    torch.testing.assert_close(g_ours, g_ref)


def test_ctc_loss_matches_torch_in_float32(dev):
    logits, rows, input_lengths = _batch(dev, dtype=torch.float32, seed=1)
    targets, target_lengths = _targets(rows, "padded", 0)
    targets = targets.to(dev)
    ours = ctc.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths, reduction="none")
    ref = F.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths, reduction="none")
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    (g1,) = torch.autograd.grad(ours.sum(), logits)
    (g2,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)


def test_fused_path_equals_the_recursion(dev):
    logits, rows, input_lengths = _batch(dev, seed=2)
    targets, target_lengths = _targets(rows, "padded", 0)
    args = (logits.log_softmax(-1), targets.to(dev), input_lengths, target_lengths)
    torch.testing.assert_close(ctc.ctc_loss(*args, fused=True), ctc.ctc_loss(*args))


def test_batch_first_log_probs_give_the_same_loss(dev):
    logits, rows, input_lengths = _batch(dev, seed=8)
    targets, target_lengths = _targets(rows, "padded", 0)
    args = (targets.to(dev), input_lengths, target_lengths)
    time_first = ctc.ctc_loss(logits.log_softmax(-1), *args, reduction="none")  # (T, N, C), torch's
    for fused in (False, True):
        batch_first = ctc.ctc_loss(logits.transpose(0, 1).log_softmax(-1), *args, reduction="none",
                                   batch_first=True, fused=fused)  # (N, T, C)
        torch.testing.assert_close(batch_first, time_first)


def test_unbatched_input_and_int_lengths(dev):
    logits, rows, _ = _batch(dev, seed=3)
    lp = logits[:, 1].log_softmax(-1)  # (T, C)
    target = torch.tensor(rows[1], device=dev)
    ours = ctc.ctc_loss(lp, target, 9, 4, reduction="none")
    assert ours.shape == ()
    torch.testing.assert_close(ours, F.ctc_loss(lp, target, torch.tensor(9), torch.tensor(4), reduction="none"))


def test_two_frames_hand_worked():
    # Each frame: blank with 0.6, "a" with 0.4. The labelling "a" has the paths (a a), (a -), (- a):
    # 0.16 + 0.24 + 0.24 = 0.64. The empty labelling has one path, (- -): 0.36.
    lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()  # (T=2, C=2)
    loss_a = ctc.ctc_loss(lp, torch.tensor([1]), 2, 1, reduction="none")
    loss_empty = ctc.ctc_loss(lp, torch.tensor([1]), 2, 0, reduction="none")
    torch.testing.assert_close(loss_a, -torch.tensor(0.64, dtype=torch.float64).log())
    torch.testing.assert_close(loss_empty, -torch.tensor(0.36, dtype=torch.float64).log())
    # "a a" needs a blank between the two a's: three frames, of which the only path is (a - a).
    lp3 = torch.tensor([[0.6, 0.4]] * 3, dtype=torch.float64).log()
    loss_aa = ctc.ctc_loss(lp3, torch.tensor([1, 1]), 3, 2, reduction="none")
    torch.testing.assert_close(loss_aa, -torch.tensor(0.4 * 0.6 * 0.4, dtype=torch.float64).log())


def test_too_short_inputs_give_inf_never_nan(dev):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 3, 4, generator=g, dtype=torch.float64).to(dev).requires_grad_()
    # item 0: "1 1" in 2 frames (needs 3: the repeat needs a blank); item 1: "1 2 3" in 2 frames;
    # item 2: "1 2" in 2 frames, feasible (no repeat, no blank needed)
    targets = torch.tensor([[1, 1, 0], [1, 2, 3], [1, 2, 0]], device=dev)
    args = (targets, torch.tensor([2, 2, 2]), torch.tensor([2, 3, 2]))
    loss = ctc.ctc_loss(logits.log_softmax(-1), *args, reduction="none")
    assert torch.isinf(loss[:2]).all() and torch.isfinite(loss[2])
    torch.testing.assert_close(loss, F.ctc_loss(logits.log_softmax(-1), *args, reduction="none"))
    (grad,) = torch.autograd.grad(loss[2], logits, retain_graph=True)  # the feasible item's: clean
    assert torch.isfinite(grad).all()
    for reduction in ("none", "sum", "mean"):
        zeroed = ctc.ctc_loss(logits.log_softmax(-1), *args, reduction=reduction, zero_infinity=True)
        ref = F.ctc_loss(logits.log_softmax(-1), *args, reduction=reduction, zero_infinity=True)
        torch.testing.assert_close(zeroed, ref)
        (g_ours,) = torch.autograd.grad(zeroed.sum(), logits)
        (g_ref,) = torch.autograd.grad(ref.sum(), logits)
        assert torch.isfinite(g_ours).all()
        torch.testing.assert_close(g_ours, g_ref)
    # an infinite loss without zero_infinity still back-propagates no NaN (its gradient is 0)
    (g_inf,) = torch.autograd.grad(loss[0], logits)
    assert not g_inf.isnan().any() and not g_inf.any()


def test_gradient_wrt_log_probs_differs_from_torch_by_exp_log_probs():
    # Autograd gives d loss / d log y exactly: at every frame it sums to -1 (each frame is in
    # exactly one position of every path). torch's kernel adds exp(log y), as documented.
    logits, rows, input_lengths = _batch("cpu", seed=5)
    targets, target_lengths = _targets(rows, "padded", 0)
    lp = logits.detach().log_softmax(-1).requires_grad_()
    (ours,) = torch.autograd.grad(ctc.ctc_loss(lp, targets, input_lengths, target_lengths, reduction="sum"), lp)
    (ref,) = torch.autograd.grad(F.ctc_loss(lp, targets, input_lengths, target_lengths, reduction="sum"), lp)
    frames = torch.arange(lp.shape[0]).unsqueeze(1) < input_lengths  # (T, N): the frames that count
    torch.testing.assert_close(ours.sum(-1)[frames], -torch.ones(int(frames.sum()), dtype=torch.float64))
    torch.testing.assert_close(ours[frames] + lp.exp()[frames], ref[frames])
    assert not ours[~frames].any()


def test_ctc_loss_gradcheck():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(5, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    targets, lengths = torch.tensor([[1, 1], [2, 1]]), torch.tensor([2, 2])
    assert torch.autograd.gradcheck(
        lambda z: ctc.ctc_loss(z.log_softmax(-1), targets, torch.tensor([5, 4]), lengths), (logits,))


@pytest.mark.parametrize("call,error,match", [
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[1]]), [4], [1], reduction="avg"), ValueError, "reduction"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[1]]), [4], [1], blank=3), ValueError,
     r"blank must be an int in \[0, C=3\)"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[0]]), [4], [1]), ValueError, "blank index 0"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[5]]), [4], [1]), ValueError, r"\[0, C=3\)"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[1]]), [5], [1]), ValueError, "at most T=4"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[1]]), [4, 4], [1]), ValueError, "N=1"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[1]]), [4], [2]), ValueError, "padded targets"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([1, 2, 1]), [4], [2]), ValueError, "concatenated"),
    (lambda lp: ctc.ctc_loss(lp, torch.tensor([[1.0]]), [4], [1]), TypeError, "integer"),
    (lambda lp: ctc.ctc_loss(lp[0, 0], torch.tensor([[1]]), [4], [1]), ValueError, r"\(T, N, C\)"),
    (lambda lp: ctc.beam_search(lp, 0), ValueError, "beam_width"),
    (lambda lp: ctc.greedy_decode(lp.transpose(0, 1), input_lengths=[7]), ValueError, "at most T=4"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    lp = torch.randn(4, 1, 3).log_softmax(-1)
    with pytest.raises(error, match=match):
        call(lp)


# ------------------------------------------------------------------ decoding


def test_collapse_merges_repeats_then_drops_blanks():
    assert ctc.collapse([1, 1, 0, 1, 2, 0]) == [1, 1, 2]
    assert ctc.collapse([0, 0, 0]) == []
    assert ctc.collapse([2, 2, 1, 1], blank=1) == [2]
    assert ctc.collapse(torch.tensor([3, 0, 3, 3])) == [3, 3]


def _brute_force(lp):
    """log p(l|x) of every labelling, by summing over all C^T paths of a (T, C) tensor."""
    T, C = lp.shape
    totals = {}
    for path in itertools.product(range(C), repeat=T):
        p = math.exp(sum(lp[t, c].item() for t, c in enumerate(path)))
        key = tuple(ctc.collapse(path))
        totals[key] = totals.get(key, 0.0) + p
    return totals


def test_greedy_can_miss_the_most_probable_labelling():
    # The hand-worked case above: the best path (- -) spells nothing, with 0.36, while the
    # labelling "a" collects 0.64 over three paths.
    lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert ctc.greedy_decode(lp) == []
    labels, log_p = ctc.beam_search(lp, beam_width=4)
    assert labels == [1]
    assert log_p == pytest.approx(math.log(0.64), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_the_most_probable_labelling(seed, dev):
    g = torch.Generator().manual_seed(seed)
    # peaked, uneven frames so that the labellings' probabilities differ clearly
    lp = (2 * torch.randn(5, 3, generator=g, dtype=torch.float64)).log_softmax(-1).to(dev)
    totals = _brute_force(lp.cpu())
    best = max(totals, key=totals.get)
    # 1 + 2 + 4 + 8 + 16 + 32 = 63 prefixes of at most 5 labels over 2 labels: nothing is pruned
    labels, log_p = ctc.beam_search(lp, beam_width=64)
    assert tuple(labels) == best
    assert log_p == pytest.approx(math.log(totals[best]), abs=1e-10)
    # the beam's score is the CTC likelihood of what it found
    if labels:
        nll = ctc.ctc_loss(lp, torch.tensor(labels, device=dev), 5, len(labels), reduction="none")
        assert -nll.item() == pytest.approx(log_p, abs=1e-10)
    # the greedy labelling's probability is at most the best one's
    assert totals[tuple(ctc.greedy_decode(lp))] <= totals[best] + 1e-12


def test_batched_decoding_is_batch_first_and_respects_input_lengths(dev):
    g = torch.Generator().manual_seed(7)
    lp = torch.randn(3, 8, 4, generator=g).log_softmax(-1).to(dev)  # (N, T, C): batch first
    lengths = [8, 5, 2]
    greedy = ctc.greedy_decode(lp, input_lengths=lengths)
    beams = ctc.beam_search(lp, beam_width=8, input_lengths=torch.tensor(lengths))
    assert len(greedy) == len(beams) == 3
    for n, T_n in enumerate(lengths):
        alone = lp[n, :T_n]  # (T_n, C)
        assert greedy[n] == ctc.collapse(alone.argmax(-1).tolist())
        assert beams[n] == ctc.beam_search(alone, beam_width=8)


def test_ctc_loss_trains_free_logits_to_spell_the_target(dev):
    """Learning: 60 Adam steps (lr 0.3, seed 0) on free logits make greedy decoding spell 1 2 2 3.

    Measured on cpu: the loss falls from 2.23 to 0.0006; the threshold is 5% of the start.
    """
    torch.manual_seed(0)
    logits = torch.zeros(10, 5, device=dev, requires_grad=True)  # (T, C): uniform to start
    target = torch.tensor([1, 2, 2, 3], device=dev)
    opt = torch.optim.Adam([logits], lr=0.3)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = ctc.ctc_loss(logits.log_softmax(-1), target, 10, 4)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first, (first, loss.item())
    assert ctc.greedy_decode(logits.detach().log_softmax(-1)) == [1, 2, 2, 3]


def test_unbatched_log_probs_take_one_target_and_bool_targets_are_refused():
    log_probs = torch.randn(6, 4).log_softmax(-1)  # (T, C), unbatched
    with pytest.raises(ValueError, match=r"one target sequence.*\(2, 2\)"):
        ctc.ctc_loss(log_probs, torch.tensor([[1, 2], [3, 1]]), 6, 2)
    one = ctc.ctc_loss(log_probs, torch.tensor([[1, 2]]), 6, 2)  # (1, S) is one sequence
    torch.testing.assert_close(one, ctc.ctc_loss(log_probs, torch.tensor([1, 2]), 6, 2))
    with pytest.raises(TypeError, match="integer"):
        ctc.ctc_loss(log_probs.unsqueeze(1), torch.tensor([[True, False]]), [6], [2])


# ------------------------------------------------------------------ scoring transcriptions


def test_edit_distance_and_label_error_rate():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance([], [1, 2]) == 2 and metrics.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert metrics.edit_distance("好棒", "好棒棒") == 1
    assert metrics.label_error_rate([[1, 2], [3]], [[1, 2, 2], [4]]) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        metrics.label_error_rate([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="the references are all empty"):
        metrics.label_error_rate([[1]], [[]])
