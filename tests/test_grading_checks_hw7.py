"""Homework 7's checks, called directly on local functions: wrong answers fail with a message
naming the item, and an answer that calls a reference is blocked (and would otherwise be right).
That the source's answers pass under any grading seed is tested with every homework's in
test_grading_checks.py; the pipeline is in test_grading_hw7.py. The references are checked against
the library's own addressing (seqmem.addressing, seqmem.ntm, seqmem.dnc) here."""
import pytest
import torch

import seqmem
from test_grading_checks import assert_blocked_and_otherwise_right, assert_fails_with_a_message
from test_grading_checks import source  # noqa: F401 (the fixture: every homework's source answers)
from seqmem.grading import guard, hw7

CHECKS = {"content_weights": hw7.check_content_weights, "location_weights": hw7.check_location_weights,
          "write_heads": hw7.check_write_heads, "allocation_weights": hw7.check_allocation_weights}


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _softmax(g, *shape):
    return torch.softmax(2 * torch.randn(*shape, generator=g, dtype=torch.float64), -1)


# ------------------------------------------------------------------------------ the references against the library

def test_the_content_reference_is_the_librarys_with_its_epsilon():
    g = _g(0)
    memory, keys = torch.randn(3, 6, 4, generator=g, dtype=torch.float64), torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    memory[:, 1] = 0.0
    beta = 4 * torch.rand(3, 2, generator=g, dtype=torch.float64)
    assert hw7.EPSILON == seqmem.addressing.EPSILON
    torch.testing.assert_close(hw7.content_weights_reference(memory, keys, beta),
                               seqmem.content_addressing(memory, keys, beta))


@pytest.mark.parametrize("S", [0, 1, 3])
def test_the_location_reference_is_the_librarys_pipeline_without_epsilon(S):
    g, B, N = _g(S), 3, 2 * S + 3
    w_c, w_prev, s = _softmax(g, B, N), _softmax(g, B, N), _softmax(g, B, 2 * S + 1)
    gate, gamma = torch.rand(B, generator=g, dtype=torch.float64), 1 + 3 * torch.rand(B, generator=g, dtype=torch.float64)
    library = seqmem.sharpen(seqmem.shift(seqmem.interpolate(w_c, w_prev, gate), s), gamma, eps=0.0)
    torch.testing.assert_close(hw7.location_weights_reference(w_c, w_prev, gate, s, gamma), library)


def test_the_write_reference_is_the_librarys_heads_one_after_the_other():
    """Erasures commute and adds commute, but one head's add is erased by the next head's erase in a
    sequential write: the heads-at-once write equals the sequential one where the heads' slots differ."""
    g = _g(1)
    memory = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    w = torch.zeros(2, 2, 5, dtype=torch.float64)
    w[:, 0, :2], w[:, 1, 3:] = 0.5, 0.5  # disjoint slots
    e, a = torch.rand(2, 2, 3, generator=g, dtype=torch.float64), torch.randn(2, 2, 3, generator=g, dtype=torch.float64)
    sequential = memory
    for h in range(2):
        sequential = seqmem.addressing.write(sequential, w[:, h], e[:, h], a[:, h])
    torch.testing.assert_close(hw7.write_heads_reference(memory, w, e, a), sequential)
    torch.testing.assert_close(hw7.write_heads_reference(memory, w[:, :1], e[:, :1], a[:, :1]),
                               seqmem.addressing.write(memory, w[:, 0], e[:, 0], a[:, 0]))


def test_the_allocation_reference_is_the_librarys_for_one_head_then_grows_the_usage():
    g = _g(2)
    usage = torch.rand(4, 7, generator=g, dtype=torch.float64)
    gates = torch.rand(4, 3, generator=g, dtype=torch.float64)
    out = hw7.allocation_weights_reference(usage, gates)
    u = usage
    for k in range(3):
        torch.testing.assert_close(out[:, k], seqmem.allocation_weighting(u, eps=0.0))
        u = u + (1 - u) * gates[:, k:k + 1] * out[:, k]
    fresh = hw7.allocation_weights_reference(torch.zeros(1, 4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64))
    torch.testing.assert_close(fresh[0], torch.eye(4, dtype=torch.float64))


# ------------------------------------------------------------------------------ wrong answers

def _content(norm):
    def answer(memory, keys, beta):
        K = (keys @ memory.transpose(1, 2)) / (norm(keys).unsqueeze(2) * norm(memory).unsqueeze(1))
        return torch.softmax(beta.unsqueeze(2) * K, dim=2)
    return answer


def _location(shift_sign=1, order="interpolate first", sharpen=True):
    def answer(w_c, w_prev, g, s, gamma):
        S = s.shape[1] // 2
        w_g = g[:, None] * w_c + (1 - g[:, None]) * w_prev if order == "interpolate first" else None
        if order == "no interpolation":
            w_g = w_c
        w_tilde = sum(s[:, k:k + 1] * torch.roll(w_g, shift_sign * (k - S), 1) for k in range(2 * S + 1))
        if not sharpen:
            return w_tilde
        p = w_tilde ** gamma[:, None]
        return p / p.sum(1, keepdim=True)
    return answer


def _write(rule):
    def answer(memory, w, e, a):
        if rule == "in place":
            memory *= (1 - w.unsqueeze(3) * e.unsqueeze(2)).prod(1)
            memory += torch.einsum("bhn,bhw->bnw", w, a)
            return memory
        if rule == "summed erasures":
            return memory * (1 - (w.unsqueeze(3) * e.unsqueeze(2)).sum(1)) + torch.einsum("bhn,bhw->bnw", w, a)
        if rule == "first head only":
            return memory * (1 - w[:, 0, :, None] * e[:, 0, None, :]) + w[:, 0, :, None] * a[:, 0, None, :]
    return answer


def _allocation(stable=True, update=True, descending=False, inclusive=False):
    def answer(usage, write_gates):
        heads, u = [], usage
        for k in range(write_gates.shape[1]):
            u_sorted, phi = torch.sort(u, dim=1, stable=stable, descending=descending)
            prods = torch.cumprod(u_sorted, 1)
            before = prods if inclusive else torch.cat([torch.ones_like(u_sorted[:, :1]), prods[:, :-1]], 1)
            a = torch.zeros_like(u).scatter(1, phi, (1 - u_sorted) * before)
            heads.append(a)
            if update:
                u = u + (1 - u) * write_gates[:, k:k + 1] * a
        return torch.stack(heads, 1)
    return answer


def _unstable_sort(usage, write_gates):
    """Ties broken by the higher slot: the sort of the reversed slots, mapped back."""
    flipped = _allocation()(usage.flip(1), write_gates)
    return flipped.flip(2)


WRONG = {  # case -> (item, answer, a phrase of the message)
    "content: no epsilon": ("content_weights", _content(lambda x: x.norm(dim=-1)), "differs"),
    "content: epsilon outside the root": ("content_weights", _content(lambda x: x.norm(dim=-1) + 1e-6), "differs"),
    "content: dot products, not cosines": ("content_weights", _content(lambda x: torch.ones(x.shape[:-1], dtype=x.dtype)),
                                           "differs"),
    "content: float64 always": ("content_weights", lambda memory, keys, beta: _content(
        lambda x: (x.pow(2).sum(-1) + 1e-6).sqrt())(memory.double(), keys.double(), beta.double()), "dtype"),
    "location: the shift the wrong way": ("location_weights", _location(shift_sign=-1), "differs"),
    "location: no interpolation": ("location_weights", _location(order="no interpolation"), "differs"),
    "location: no sharpening": ("location_weights", _location(sharpen=False), "differs"),
    "write: in place": ("write_heads", _write("in place"), "in place"),
    "write: erasures summed": ("write_heads", _write("summed erasures"), "differs"),
    "write: the first head only": ("write_heads", _write("first head only"), "differs"),
    "allocation: usage never grows": ("allocation_weights", _allocation(update=False), "differs"),
    "allocation: descending sort": ("allocation_weights", _allocation(descending=True), "differs"),
    "allocation: the product includes the slot": ("allocation_weights", _allocation(inclusive=True), "differs"),
    "allocation: ties to the higher slot": ("allocation_weights", _unstable_sort, "differs"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(case):
    item, answer, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], answer, item, phrase)


def test_the_shared_answers_of_the_tests_above_are_right_where_they_should_be():
    """The helpers the wrong answers are built from are right themselves (so each case fails for its
    own reason)."""
    CHECKS["content_weights"](_content(lambda x: (x.pow(2).sum(-1) + 1e-6).sqrt()))
    CHECKS["location_weights"](_location())
    CHECKS["allocation_weights"](_allocation())


# ------------------------------------------------------------------------------ blocked references

def _content_by_library(memory, keys, beta):
    return seqmem.content_addressing(memory, keys, beta)


def _location_by_library(w_c, w_prev, g, s, gamma):
    return seqmem.sharpen(seqmem.shift(seqmem.interpolate(w_c, w_prev, g), s), gamma, eps=0.0)


def _write_by_library(memory, w, e, a):
    """The library's one-head write, once for all the erasures and once per add (exact for the
    heads at once: the erasures multiply, the adds sum)."""
    B, H, N = w.shape
    kept = memory
    for h in range(H):
        kept = seqmem.addressing.write(kept, w[:, h], e[:, h], torch.zeros_like(a[:, h]))
    return kept + torch.einsum("bhn,bhw->bnw", w, a)


def _allocation_by_library(usage, write_gates):
    heads, u = [], usage
    for k in range(write_gates.shape[1]):
        a = seqmem.dnc.allocation_weighting(u, eps=0.0)
        heads.append(a)
        u = u + (1 - u) * write_gates[:, k:k + 1] * a
    return torch.stack(heads, 1)


def _cosine_by_torch(memory, keys, beta):
    dots = torch.nn.functional.cosine_similarity(keys.unsqueeze(2), memory.unsqueeze(1), dim=-1, eps=0.0)
    norms = (keys.pow(2).sum(-1) + 1e-6).sqrt().unsqueeze(2) * (memory.pow(2).sum(-1) + 1e-6).sqrt().unsqueeze(1)
    exact = keys.norm(dim=-1).unsqueeze(2) * memory.norm(dim=-1).unsqueeze(1)
    return torch.softmax(beta.unsqueeze(2) * torch.nan_to_num(dots) * exact / norms, dim=2)


BLOCKED = {
    "seqmem.content_addressing": ("content_weights", _content_by_library),
    "torch's cosine_similarity": ("content_weights", _cosine_by_torch),
    "seqmem.ntm's pipeline": ("location_weights", _location_by_library),
    "seqmem.addressing.write": ("write_heads", _write_by_library),
    "seqmem.dnc.allocation_weighting": ("allocation_weights", _allocation_by_library),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)


@pytest.mark.parametrize("grading_seed", [None, "one instructor", "another instructor"])
def test_the_hidden_cases_cover_the_edges(monkeypatch, grading_seed):
    """Empty rows and keys, beta = 0, S = 0 and the widest shift, the wrap-around, g = 0 and 1,
    several heads on one slot, a fresh and a full memory, ties in usage and closed gates are among
    the cases, whatever the instructor's grading seed."""
    monkeypatch.setattr(guard, "references", lambda item: [])
    guard.set_grading_seed(grading_seed)
    seen = dict.fromkeys(["empty row", "beta 0", "S 0", "widest", "wrap", "g 0", "g 1", "one slot", "fresh",
                          "full", "ties", "closed gate", "closed and open gates", "float32", "float64"], False)

    def content(memory, keys, beta):
        seen["empty row"] |= bool((memory.abs().sum(-1) == 0).any())
        seen["beta 0"] |= bool((beta == 0).any())
        seen[str(memory.dtype).removeprefix("torch.")] = True
        return hw7.content_weights_reference(memory, keys, beta)

    def location(w_c, w_prev, g, s, gamma):
        S, N = s.shape[1] // 2, w_c.shape[1]
        seen["S 0"] |= S == 0
        seen["widest"] |= N == 2 * S + 1 and S > 0
        seen["wrap"] |= bool((s[:, 0] == 1).any()) and S > 0
        seen["g 0"] |= bool((g == 0).any())
        seen["g 1"] |= bool((g == 1).any())
        return hw7.location_weights_reference(w_c, w_prev, g, s, gamma)

    def write(memory, w, e, a):
        seen["one slot"] |= w.shape[1] > 1 and bool((w[:, :, 0] == 1).all())
        return hw7.write_heads_reference(memory, w, e, a)

    def allocation(usage, gates):
        seen["fresh"] |= bool((usage == 0).all(1).any())
        seen["full"] |= bool((usage == 1).all(1).any())
        seen["ties"] |= any(len(set(row)) < len(row) for row in usage.tolist())
        seen["closed gate"] |= bool((gates == 0).any())
        seen["closed and open gates"] |= gates.shape[1] > 1 and bool((gates[:, 0] == 0).all() & (gates[:, -1] == 1).all())
        return hw7.allocation_weights_reference(usage, gates)

    try:
        for item, fn in (("content_weights", content), ("location_weights", location), ("write_heads", write),
                         ("allocation_weights", allocation)):
            CHECKS[item](fn)
    finally:
        guard.set_grading_seed(None)
    assert all(seen.values()), seen
