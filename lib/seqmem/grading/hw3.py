"""Homework 3's checks: a label-smoothed loss per sequence, sampling with a temperature, a beam
step with Wu et al.'s length penalty, and BLEU's clipping against several references.

Each item is a sibling of what chapter 4 shows (the token-mean masked cross-entropy, greedy
decoding, a beam step with log p / len^alpha where ``<eos>`` takes a slot, modified precision
against one reference). As in ``hw1`` and ``hw2``: the student's function runs through
``guard.call`` on fresh inputs drawn from ``guard.item_seed``; its result is validated, then
compared with the reference computed here.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable

import torch

from ..text import BOS_ID, EOS_ID, PAD_ID
from .guard import call, close, decompositions, fail, guard_tensor, item_seed, register, torch_compilers

__all__ = ["check_sequence_nll", "check_sample_decode", "check_beam_step_gnmt", "check_clipped_precision",
           "sequence_nll_reference", "sample_decode_reference", "beam_step_gnmt_reference",
           "clipped_precision_reference", "rnn_decoder_params"]


def _loss_references() -> list:
    from .. import heads, seq2seq, transformer_seq2seq

    return [heads.cross_entropy, heads.tagging_loss, seq2seq.seq2seq_loss, transformer_seq2seq.label_smoothing_loss,
            transformer_seq2seq.smoothed_seq2seq_loss, (torch.nn.functional, "cross_entropy"),
            (torch.nn.functional, "nll_loss"), (torch.nn.functional, "kl_div"), (torch.nn.CrossEntropyLoss, "forward"),
            (torch.nn.NLLLoss, "forward"), (torch.nn.KLDivLoss, "forward"), *_refs("nll_loss", "cross_entropy"),
            *decompositions("nll_loss", "cross_entropy"), *torch_compilers(), "cross_entropy", "nll_loss", "kl_div"]


def _refs(*names: str) -> list:
    """torch's Python references of its operators (torch._refs), which run them from plain ops."""
    import torch._refs.nn.functional as functional

    return [(functional, n) for n in names if hasattr(functional, n)]


def _decoding_references() -> list:
    from .. import decoding, rnn, seq2seq
    from .hw1 import recurrent_layers

    # greedy and beam_hypotheses are wrapped by torch.no_grad: their own code is blocked, which every
    # name they go by (seqmem.greedy, seqmem.decoding.greedy) reaches
    return [decoding.greedy.__wrapped__, decoding.beam_search, decoding.beam_hypotheses.__wrapped__, rnn.rnn_step,
            (rnn.RNNCell, "forward"), (rnn.NaiveRNNCell, "forward"), (rnn.RNN, "forward"), *recurrent_layers(),
            (seq2seq.Decoder, "step"), (seq2seq.Seq2Seq, "step"), (seq2seq.Seq2Seq, "forward"),
            (torch.nn.RNNCell, "forward"), (torch.nn.RNN, "forward"), *decompositions("rnn"), *torch_compilers(), "rnn"]


def _beam_references() -> list:
    from .. import decoding

    return [decoding.beam_step, decoding.beam_hypotheses.__wrapped__, decoding.beam_search, decoding._carry,
            decoding.length_normalised, *torch_compilers()]


def _bleu_references() -> list:
    from .. import metrics

    refs: list = [metrics.modified_precision, metrics.ngram_counts, metrics.corpus_bleu]
    try:
        import sacrebleu
        from sacrebleu.metrics import bleu, helpers
    except ImportError:  # sacrebleu is in the requirements; without it there is nothing to block
        return refs
    # the n-gram helpers by their code: sacrebleu's bleu module holds its own names for them
    return refs + [(sacrebleu, "corpus_bleu"), (sacrebleu, "sentence_bleu"), helpers.extract_all_word_ngrams,
                   helpers.extract_word_ngrams, *[(bleu.BLEU, n) for n in
                   ("corpus_score", "sentence_score", "_extract_corpus_statistics", "_compute_segment_statistics",
                    "_extract_reference_info", "_cache_references")]]


register({"sequence_nll": _loss_references, "sample_decode": _decoding_references,
          "beam_step_gnmt": _beam_references, "clipped_precision": _bleu_references})


def _dtype(k: int) -> torch.dtype:
    return torch.float64 if k % 2 else torch.float32


# ------------------------------------------------------------------------------ 1. label-smoothed NLL per sequence

def sequence_nll_reference(logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor,
                           epsilon: float) -> torch.Tensor:
    """(B,) sum over t < lengths[b] of (1 - eps) (-log p_t[y_t]) + eps * mean_v (-log p_t[v])."""
    log_p = torch.log_softmax(logits.double(), dim=-1)  # (B, T, V)
    picked = -log_p.gather(-1, targets[..., None]).squeeze(-1)  # (B, T)
    uniform = -log_p.mean(-1)  # (B, T): the cross-entropy against the uniform distribution
    per_step = (1 - epsilon) * picked + epsilon * uniform
    real = torch.arange(logits.shape[1])[None, :] < lengths[:, None]  # (B, T)
    return torch.where(real, per_step, torch.zeros(())).sum(1).to(logits.dtype)


def check_sequence_nll(fn: Callable, trials: int = 8, seed: int = 401) -> None:
    """Check ``fn(logits, targets, lengths, epsilon) -> (B,)``, the label-smoothed loss per sequence.

    logits (B, T, V), targets (B, T) int64 (anything beyond a sequence's length is padding, any id),
    lengths (B,) int64 in [1, T], epsilon in [0, 1). Tried in float32 and float64, with large
    logits at the padding, B = T = 1 and V = 2 included.
    """
    item = "sequence_nll"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    sizes = [(1, 1, 2), (3, 5, 4)] + [tuple(int(v) for v in torch.randint(1, 8, (3,), generator=g)) for _ in range(trials)]
    for k, (B, T, V) in enumerate(sizes[:trials]):
        V, dtype = max(V, 2), _dtype(k)
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T  # one sequence without padding
        logits = 3 * torch.randn(B, T, V, generator=g, dtype=dtype)
        real = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        logits[~real] = 50 * torch.randn(int((~real).sum()), V, generator=g, dtype=dtype)  # the padding's junk
        targets = torch.randint(V, (B, T), generator=g)
        epsilon = 0.0 if k == 0 else round(float(torch.rand((), generator=g)) * 0.4, 3)
        out = call(item, fn, logits.clone(), targets.clone(), lengths.clone(), epsilon)
        expected = sequence_nll_reference(logits, targets, lengths, epsilon)
        guard_tensor(item, out, (B,), dtype)
        close(item, out.detach(), expected,
              what=f"loss per sequence for B={B}, T={T}, V={V}, epsilon={epsilon}, lengths={lengths.tolist()} ({dtype})")


# ------------------------------------------------------------------------------ 2. sampling with a temperature

PARAM_NAMES = ("embedding", "W_ih", "W_hh", "b", "W_out", "b_out")


def rnn_decoder_params(V: int, E: int, H: int, generator: torch.Generator, dtype=torch.float64) -> dict:
    """A random tanh RNN decoder: embedding (V, E), W_ih (H, E), W_hh (H, H), b (H,), W_out (V, H),
    b_out (V,); ``<eos>``'s output bias is raised so that sequences end at different steps."""
    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)
    params = dict(embedding=randn(V, E), W_ih=randn(H, E), W_hh=randn(H, H) / math.sqrt(H), b=randn(H),
                  W_out=2 * randn(V, H), b_out=randn(V))
    params["b_out"][EOS_ID] += 0.5
    return params


def _decoder_step(params: dict, h: torch.Tensor, tokens: torch.Tensor) -> tuple:
    """h' = tanh(W_ih e + W_hh h + b) with e the previous token's embedding; logits = W_out h' + b_out."""
    e = params["embedding"][tokens]  # (B, E)
    h = torch.tanh(e @ params["W_ih"].T + h @ params["W_hh"].T + params["b"])  # (B, H)
    return h, h @ params["W_out"].T + params["b_out"]  # (B, V)


def sample_decode_reference(params: dict, h0: torch.Tensor, uniforms: torch.Tensor, temperature: float):
    """The tokens (B, max_len) and, per step, the smallest distance between a cdf value and u.

    At each step the token is the number of v with cdf[v] <= u (inverse-cdf sampling), cdf the
    running sum of softmax(logits / temperature); a sequence's tokens end with its ``<eos>``, then
    padding. The distance tells whether a case is safely away from a boundary between tokens.
    """
    params = {k: v.double() for k, v in params.items()}
    B, max_len = uniforms.shape
    h, tokens = h0.double(), torch.full((B,), BOS_ID, dtype=torch.long)
    out = torch.full((B, max_len), PAD_ID, dtype=torch.long)
    live = torch.ones(B, dtype=torch.bool)
    margin = math.inf
    for t in range(max_len):
        h, logits = _decoder_step(params, h, tokens)
        cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)  # (B, V)
        u = uniforms[:, t].double()[:, None]  # (B, 1)
        tokens = (cdf <= u).sum(-1).clamp(max=cdf.shape[1] - 1)  # (B,)
        if live.any():
            margin = min(margin, (cdf[live, :-1] - u[live]).abs().min().item() if cdf.shape[1] > 1 else math.inf)
        out[:, t] = torch.where(live, tokens, PAD_ID)
        live = live & (tokens != EOS_ID)
    return out, margin


def _safe_draws(params, h0, temperature, shape, dtype, g, margin: float) -> torch.Tensor:
    """Uniforms at least ``margin`` from every token boundary of the reference's decoding: drawn
    again while too close (up to 50 times), else the draw with the largest gap."""
    best, best_gap = None, -1.0
    for _ in range(50):
        uniforms = torch.rand(*shape, generator=g, dtype=dtype)
        _, gap = sample_decode_reference(params, h0, uniforms, temperature)
        if gap > best_gap:
            best, best_gap = uniforms, gap
        if gap > margin:
            break
    return best


def check_sample_decode(fn: Callable, trials: int = 8, seed: int = 409, margin: float = 1e-4) -> None:
    """Check ``fn(params, h0, uniforms, temperature) -> tokens (B, max_len)`` int64.

    params: ``rnn_decoder_params``' dict; h0 (B, H); uniforms (B, max_len) in [0, 1), the draw for
    each step; temperature > 0. Tried in float32 and float64 with sizes from 1 up, on draws at
    least ``margin`` away from every boundary between two tokens (so rounding cannot change one).
    """
    item = "sample_decode"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, E, H, max_len = (1, 1, 1, 1) if k == 0 else tuple(int(v) for v in torch.randint(1, 7, (4,), generator=g))
        V, dtype = int(torch.randint(3, 8, (), generator=g)), _dtype(k)
        temperature = round(0.5 + 1.5 * float(torch.rand((), generator=g)), 3)
        params = rnn_decoder_params(V, E, H, g, dtype)
        h0 = torch.randn(B, H, generator=g, dtype=dtype)
        uniforms = _safe_draws(params, h0, temperature, (B, max_len), dtype, g, margin)
        out = call(item, fn, {n: p.clone() for n, p in params.items()}, h0.clone(), uniforms.clone(), temperature)
        expected, _ = sample_decode_reference(params, h0, uniforms, temperature)  # after the call
        guard_tensor(item, out, (B, max_len), torch.int64)
        if not torch.equal(out, expected):
            fail(item, f"the tokens differ from the reference for B={B}, V={V}, H={H}, max_len={max_len}, "
                       f"temperature={temperature} ({dtype}):\nexpected {expected.tolist()}\ngot      {out.tolist()}")


# ------------------------------------------------------------------------------ 3. a beam step with the GNMT penalty

def gnmt_penalty(length: int, alpha: float) -> float:
    """Wu et al.'s (2016) length penalty lp(|y|) = ((5 + |y|) / 6)^alpha."""
    return ((5 + length) / 6) ** alpha


def beam_step_gnmt_reference(scores, log_probs, best_finished, length: int, k: int, alpha: float) -> tuple:
    """(live, parents, tokens, best_finished): the k best non-<eos> extensions by log p, and the best
    length-penalised score log p / lp(length) of any finished hypothesis so far."""
    B, K, V = log_probs.shape
    total = scores[..., None] + log_probs  # (B, K, V)
    ended = total[:, :, EOS_ID] / gnmt_penalty(length, alpha)  # (B, K)
    best = torch.maximum(best_finished, ended.max(dim=1).values)  # (B,)
    total = total.clone()
    total[:, :, EOS_ID] = -math.inf  # <eos> takes no slot in the beam
    live, index = total.flatten(1).topk(k, dim=1)  # (B, k)
    return live, index // V, index % V, best


def check_beam_step_gnmt(fn: Callable, trials: int = 8, seed: int = 419) -> None:
    """Check ``fn(scores, log_probs, best_finished, length, k, alpha) -> (live, parents, tokens, best_finished)``.

    scores (B, K), -inf for an empty slot; log_probs (B, K, V); best_finished (B,), -inf for none;
    length the hypotheses' length after this step; k at most K * (V - 1). Returns live (B, k) in
    descending order, parents and tokens (B, k) int64 (compared where live is finite) and the new
    best_finished (B,). ``<eos>`` is id 2.
    """
    item = "beam_step_gnmt"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for trial in range(trials):
        B, K = (1, 1) if trial == 0 else (int(torch.randint(2, 5, (), generator=g)), int(torch.randint(1, 5, (), generator=g)))
        V, dtype = int(torch.randint(3, 7, (), generator=g)), _dtype(trial)
        k = 1 if trial == 0 else int(torch.randint(1, K * (V - 1) + 1, (), generator=g))
        scores = -5 * torch.rand(B, K, generator=g, dtype=dtype)
        if K > 1:
            scores[0, -1] = -math.inf  # an empty slot
        log_probs = torch.log_softmax(2 * torch.randn(B, K, V, generator=g, dtype=dtype), dim=-1)
        length = int(torch.randint(1 if trial < 2 else 2, 12, (), generator=g))
        alpha = 0.0 if trial == 1 else round(0.1 + 0.9 * float(torch.rand((), generator=g)), 3)
        best_finished = -20 * torch.rand(B, generator=g, dtype=dtype)
        best_finished[0] = -math.inf
        if B > 1:  # in sample 1 the old best beats every <eos> extension of this step, penalised or not
            ended = (scores[1] + log_probs[1, :, EOS_ID]).max()
            best_finished[1] = torch.minimum(ended, ended / gnmt_penalty(length, alpha)) * 0.5
        out = call(item, fn, scores.clone(), log_probs.clone(), best_finished.clone(), length, k, alpha)
        live, parents, tokens, best = beam_step_gnmt_reference(scores, log_probs, best_finished, length, k, alpha)
        if not isinstance(out, tuple) or tuple.__len__(out) != 4:
            fail(item, f"expected a tuple (live, parents, tokens, best_finished), got {type(out).__name__}")
        got = tuple(tuple.__getitem__(out, i) for i in range(4))
        for name, value, shape, want in zip(("live", "parents", "tokens", "best_finished"), got,
                                            ((B, k), (B, k), (B, k), (B,)), (dtype, torch.int64, torch.int64, dtype)):
            guard_tensor(f"{item} ({name})", value, shape, want)
        what = f"for B={B}, K={K}, V={V}, k={k}, length={length}, alpha={alpha} ({dtype})"
        close(item, got[0].detach(), live, what=f"live log p {what}")
        finite = live > -math.inf
        for name, value, want in (("parents", got[1], parents), ("tokens", got[2], tokens)):
            if not torch.equal(value[finite], want[finite]):
                fail(item, f"the {name} differ from the reference {what}:\nexpected {want.tolist()}\n"
                           f"got      {value.tolist()}")
        close(item, got[3].detach(), best, what=f"best finished score {what}")


# ------------------------------------------------------------------------------ 4. clipping against several references

def _ngrams(tokens: list, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def clipped_precision_reference(hypotheses: list, references: list, n: int) -> tuple[int, int]:
    """(clipped n-gram matches, hypothesis n-grams), summed over the corpus; each n-gram's count
    clipped at its largest count in any of the hypothesis's references."""
    matches = total = 0
    for hyp, refs in zip(hypotheses, references):
        counts = _ngrams(hyp, n)
        most = Counter()
        for ref in refs:
            most |= _ngrams(ref, n)  # | keeps the larger count of each n-gram
        matches += sum(min(c, most[gram]) for gram, c in counts.items())
        total += sum(counts.values())
    return matches, total


def _sentence(g: torch.Generator, words: list[str], lo: int, hi: int) -> list[str]:
    length = int(torch.randint(lo, hi + 1, (), generator=g))
    return [words[int(i)] for i in torch.randint(len(words), (length,), generator=g)]


def check_clipped_precision(fn: Callable, trials: int = 8, seed: int = 421) -> None:
    """Check ``fn(hypotheses, references, n) -> (matches, total)``, two ints.

    hypotheses: a list of token lists (strings); references: for each hypothesis, a list of one or
    more reference token lists; n >= 1. Corpora with repeated words, several references, empty
    hypotheses and hypotheses shorter than n.
    """
    item = "clipped_precision"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    words = ["the", "cat", "sat", "on", "mat", "a", "dog"]
    for trial in range(trials):
        size = 1 if trial == 0 else int(torch.randint(1, 6, (), generator=g))
        n = 1 + trial % 4
        vocab = words[: 2 + trial % 5]  # few words: repeats and matches
        hypotheses = [_sentence(g, vocab, 0, 9) for _ in range(size)]
        references = [[_sentence(g, vocab, 1, 9) for _ in range(1 + int(torch.randint(3, (), generator=g)))]
                      for _ in range(size)]
        if trial == 0:  # 'the' twice in one reference and three times in the second: the clip is 3, not 5 or 2
            hypotheses, references, n = [["the"] * 4 + ["cat"]], [[["the", "mat", "the"], ["the", "the", "cat", "the"]]], 1
        if trial == 2:  # each word clipped by its own best reference: (4, 4), not the best single reference's (2, 4)
            hypotheses, references, n = [["the", "the", "cat", "cat"]], [[["the", "the"], ["cat", "cat"]]], 1
        if trial == 1:
            hypotheses[0] = []
        out = call(item, fn, [list(h) for h in hypotheses], [[list(r) for r in refs] for refs in references], n)
        expected = clipped_precision_reference(hypotheses, references, n)
        got = _guard_counts(item, out)
        if got != expected:
            fail(item, f"(matches, total) for n={n} on {size} hypotheses differ from the reference:\n"
                       f"hypotheses {hypotheses}\nreferences {references}\nexpected {expected}\ngot      {got}")


def _guard_counts(item: str, out: Any) -> tuple[int, int]:
    """Exactly a tuple of two Python ints (read past any override of a tuple subclass)."""
    values = tuple(tuple.__getitem__(out, i) for i in range(tuple.__len__(out))) if isinstance(out, tuple) else None
    if values is None or len(values) != 2 or any(type(v) is not int for v in values):
        got = type(out).__name__ if values is None else f"a tuple of {', '.join(type(v).__name__ for v in values)}"
        fail(item, f"expected a tuple (matches, total) of two Python ints, got {got}")
    return values


# the reference answers' helpers, blocked with the *_reference functions while a student's code runs
GRADER_HELPERS = [_decoder_step, gnmt_penalty, _ngrams, _safe_draws]
