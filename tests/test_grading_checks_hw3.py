"""Homework 3's checks, called directly on local functions: wrong answers fail with a message
naming the item, and an answer that calls a reference is blocked (and would otherwise be right).
That the source's answers pass under any grading seed is tested with every homework's in
test_grading_checks.py; the pipeline is in test_grading_hw3.py."""
import math
from collections import Counter

import pytest
import torch
from torch.nn import functional as F

import seqmem
from test_grading_checks import assert_blocked_and_otherwise_right, assert_fails_with_a_message
from test_grading_checks import source  # noqa: F401 (the fixture: every homework's source answers)
from seqmem import grading
from seqmem.grading import guard, hw3

CHECKS = {"sequence_nll": hw3.check_sequence_nll, "sample_decode": hw3.check_sample_decode,
          "beam_step_gnmt": hw3.check_beam_step_gnmt, "clipped_precision": hw3.check_clipped_precision}


# ------------------------------------------------------------------------------ wrong answers

def _then(item, change):
    return lambda s: lambda *args: change(s[item](*args), *args)


def _nll_counts_padding(logits, targets, lengths, epsilon):
    log_p = logits.log_softmax(-1)
    per_step = -(1 - epsilon) * log_p.gather(-1, targets[..., None])[..., 0] - epsilon * log_p.mean(-1)
    return per_step.sum(1)


def _greedy_decode(params, h0, uniforms, temperature):
    B, max_len = uniforms.shape
    h, y, out, live = h0, torch.full((B,), 1), torch.zeros(B, max_len, dtype=torch.long), torch.ones(B, dtype=torch.bool)
    for t in range(max_len):
        h = torch.tanh(params["embedding"][y] @ params["W_ih"].T + h @ params["W_hh"].T + params["b"])
        y = (h @ params["W_out"].T + params["b_out"]).argmax(-1)
        out[:, t] = torch.where(live, y, 0)
        live &= y != 2
    return out


def _sampling_never_stops(s):
    def answer(params, h0, uniforms, temperature):
        out = s["sample_decode"](params, h0, uniforms, temperature)
        # as if each sequence went on drawing after its <eos>: its padding replaced by tokens
        return torch.where(out == 0, torch.full_like(out, 3), out)
    return answer


def _beam_eos_takes_a_slot(scores, log_probs, best_finished, length, k, alpha):
    B, K, V = log_probs.shape
    total = (scores[..., None] + log_probs).flatten(1)
    live, index = total.topk(k, dim=1)
    tokens = index % V
    ended = torch.where(tokens == 2, live / ((5 + length) / 6) ** alpha, -math.inf).amax(1)
    return live.masked_fill(tokens == 2, -math.inf), index // V, tokens, torch.maximum(best_finished, ended)


def _beam_simple_penalty(s):
    def answer(scores, log_probs, best_finished, length, k, alpha):
        live, parents, tokens, _ = s["beam_step_gnmt"](scores, log_probs, best_finished, length, k, alpha)
        ended = ((scores + log_probs[:, :, 2]) / length ** alpha).amax(1)  # log p / |y|^alpha
        return live, parents, tokens, torch.maximum(best_finished, ended)
    return answer


def _clip_by_sum_of_references(hypotheses, references, n):
    matched = total = 0
    for hyp, refs in zip(hypotheses, references):
        grams = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        ceiling = sum((Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1)) for r in refs), Counter())
        matched += sum(min(c, ceiling[g]) for g, c in grams.items())
        total += sum(grams.values())
    return matched, total


def _no_clipping(hypotheses, references, n):
    """Every hypothesis n-gram found in some reference counts, however often it repeats."""
    matched = total = 0
    for hyp, refs in zip(hypotheses, references):
        found = {tuple(r[i:i + n]) for r in refs for i in range(len(r) - n + 1)}
        grams = [tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1)]
        matched += sum(g in found for g in grams)
        total += len(grams)
    return matched, total


def _clip_by_first_reference(s):
    return lambda hyps, refs, n: s["clipped_precision"](hyps, [r[:1] for r in refs], n)


WRONG = {  # case -> (item, answer made from the source's answers, a phrase of the message)
    "nll: counts the padding": ("sequence_nll", lambda s: _nll_counts_padding, "differs"),
    "nll: mean over the steps": ("sequence_nll", lambda s: lambda lg, tg, ln, e: s["sequence_nll"](lg, tg, ln, e) /
                                 ln.to(lg.dtype), "differs"),
    "nll: no smoothing": ("sequence_nll", lambda s: lambda lg, tg, ln, e: s["sequence_nll"](lg, tg, ln, 0.0), "differs"),
    "nll: the batch's total": ("sequence_nll", _then("sequence_nll", lambda out, *a: out.sum()), "shape"),
    "nll: always float64": ("sequence_nll", lambda s: lambda lg, *a: s["sequence_nll"](lg.double(), *a), "dtype"),
    "sample: greedy": ("sample_decode", lambda s: _greedy_decode, "differ"),
    "sample: never stops": ("sample_decode", _sampling_never_stops, "differ"),
    "sample: temperature multiplies": ("sample_decode", lambda s: lambda p, h, u, T: s["sample_decode"](p, h, u, 1 / T),
                                       "differ"),
    "sample: float tokens": ("sample_decode", _then("sample_decode", lambda out, *a: out.double()), "int64"),
    "beam: <eos> takes a slot": ("beam_step_gnmt", lambda s: _beam_eos_takes_a_slot, "differ"),
    "beam: |y|^alpha": ("beam_step_gnmt", _beam_simple_penalty, "best finished"),
    "beam: forgets the old best": ("beam_step_gnmt", lambda s: lambda sc, lp, best, *a: s["beam_step_gnmt"](
        sc, lp, torch.full_like(best, -math.inf), *a), "best finished"),
    "beam: flat indices as parents": ("beam_step_gnmt", _then("beam_step_gnmt", lambda out, sc, lp, *a: (
        out[0], out[1] * lp.shape[-1] + out[2], out[2], out[3])), "parents"),
    "beam: a list": ("beam_step_gnmt", _then("beam_step_gnmt", lambda out, *a: list(out)), "tuple"),
    "bleu: clips by the references' sum": ("clipped_precision", lambda s: _clip_by_sum_of_references, "differ"),
    "bleu: the first reference only": ("clipped_precision", _clip_by_first_reference, "differ"),
    "bleu: no clipping": ("clipped_precision", lambda s: _no_clipping, "differ"),
    "bleu: floats": ("clipped_precision", _then("clipped_precision", lambda out, *a: (float(out[0]), float(out[1]))),
                     "two Python ints"),
    "bleu: the ratio": ("clipped_precision", _then("clipped_precision", lambda out, *a: out[0] / max(out[1], 1)),
                        "tuple"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(source, case):
    item, make, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], make(source), item, phrase)


# ------------------------------------------------------------------------------ blocked references

def _nll_by_torch(logits, targets, lengths, epsilon):
    per_step = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none", label_smoothing=epsilon)
    return (per_step * (torch.arange(logits.shape[1]) < lengths[:, None])).sum(1)


def _sample_by(step):
    def answer(params, h0, uniforms, temperature):
        B, max_len = uniforms.shape
        h, y = h0, torch.full((B,), 1)
        out, live = torch.zeros(B, max_len, dtype=torch.long), torch.ones(B, dtype=torch.bool)
        for t in range(max_len):
            h = step(params, h, params["embedding"][y])
            cdf = torch.softmax((h @ params["W_out"].T + params["b_out"]) / temperature, -1).cumsum(-1)
            y = (cdf <= uniforms[:, t:t + 1]).sum(-1).clamp(max=cdf.shape[1] - 1)
            out[:, t] = torch.where(live, y, 0)
            live &= y != 2
        return out
    return answer


def _library_rnn(params, h, x):
    weights = {"weight_ih": params["W_ih"], "weight_hh": params["W_hh"], "bias_ih": params["b"],
               "bias_hh": torch.zeros_like(params["b"])}
    return seqmem.rnn.rnn_step(weights, h, x)[0]


def _torch_rnn(params, h, x):
    return torch.rnn_tanh_cell(x, h, params["W_ih"], params["W_hh"], params["b"], torch.zeros_like(params["b"]))


def _beam_by_library(scores, log_probs, best_finished, length, k, alpha):
    V = log_probs.shape[-1]
    no_eos = log_probs.clone()
    no_eos[:, :, 2] = -math.inf
    step = seqmem.decoding.beam_step(scores, no_eos, k)
    ended = ((scores + log_probs[:, :, 2]) / ((5 + length) / 6) ** alpha).amax(1)
    return step.live, step.parents, step.tokens, torch.maximum(best_finished, ended)


def _nll_by_label_smoothing(logits, targets, lengths, epsilon):
    """Chapter 6's label-smoothed loss, one sequence at a time (it averages over the real tokens)."""
    losses = [seqmem.label_smoothing_loss(logits[b, :n], targets[b, :n], epsilon) * n
              for b, n in enumerate(lengths.tolist())]
    return torch.stack(losses)


BLOCKED = {
    "torch.nn.functional.cross_entropy": ("sequence_nll", _nll_by_torch),
    "seqmem.label_smoothing_loss": ("sequence_nll", _nll_by_label_smoothing),
    "seqmem.rnn.rnn_step": ("sample_decode", _sample_by(_library_rnn)),
    "torch.rnn_tanh_cell": ("sample_decode", _sample_by(_torch_rnn)),
    "seqmem.decoding.beam_step": ("beam_step_gnmt", _beam_by_library),
    "seqmem.metrics.modified_precision": ("clipped_precision", seqmem.metrics.modified_precision),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)


def test_greedy_and_beam_search_are_blocked_under_every_name():
    """They are wrapped by torch.no_grad: blocking their code reaches seqmem.greedy too."""
    with guard.blocked(*guard.references("sample_decode"), item="sample_decode"):
        for fn in (seqmem.greedy, seqmem.decoding.greedy, seqmem.beam_search, seqmem.decoding.beam_hypotheses):
            with pytest.raises(grading.ReferenceBlocked):
                fn(None, torch.zeros(1, 1, dtype=torch.long), None, 1, 1) if fn in (seqmem.beam_search,
                   seqmem.decoding.beam_hypotheses) else fn(None, torch.zeros(1, 1, dtype=torch.long), None, 1)
    assert seqmem.decoding.length_normalised(-1.0, 1, 0.0) == -1.0


def test_the_hidden_draws_stay_away_from_the_token_boundaries():
    g = torch.Generator().manual_seed(0)
    params = hw3.rnn_decoder_params(5, 3, 4, g)
    uniforms = torch.rand(6, 7, generator=g, dtype=torch.float64)
    tokens, gap = hw3.sample_decode_reference(params, torch.randn(6, 4, generator=g, dtype=torch.float64), uniforms, 0.8)
    assert gap > 0 and tokens.dtype == torch.int64 and tokens.shape == (6, 7)
    ended = (tokens == 2).cumsum(1)
    assert ((ended > 0) & (torch.nn.functional.pad(ended, (1, 0))[:, :-1] > 0) <= (tokens == 0)).all()  # padding after <eos>


def test_the_penalty_is_wu_et_als():
    assert hw3.gnmt_penalty(1, 1.0) == 1.0 and hw3.gnmt_penalty(7, 0.5) == math.sqrt(2.0)
    assert hw3.gnmt_penalty(30, 0.0) == 1.0
