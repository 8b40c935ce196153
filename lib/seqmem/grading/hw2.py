"""Homework 2's checks: the LSTM's backward step, the minimal gated unit, a counter the lecture does
not build, and CTC's backward recursion.

Each item is a sibling of what chapter 3 shows (the LSTM's forward step and Greff's variants, the
GRU in both forms, the lecture's counting cell, CTC's forward recursion). As in ``hw1``: the
student's function runs through ``guard.call`` on fresh inputs drawn from ``guard.item_seed``; its
result is validated, then compared with the reference computed here.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .guard import (call, close, decompositions, fail, guard_tensor, item_seed, register, torch_compilers)
from .hw1 import autograd, recurrent_layers

__all__ = ["check_lstm_backward", "check_mgu_cell_forward", "check_counting_cell", "check_ctc_log_beta",
           "counting_sequences", "counter_outputs", "run_counting_cell", "ctc_log_beta_reference"]


def _lstm_references() -> list:
    from torch.ao.nn.quantizable.modules import rnn as quantizable

    from .. import lstm, relatives

    return [lstm.lstm_step, (lstm.LSTMCell, "forward"), (lstm.LSTM, "forward"), relatives.nested_lstm_step,
            relatives._outer_gates, (relatives.NestedLSTMCell, "forward"), *recurrent_layers(),
            (torch.nn.LSTMCell, "forward"), (torch.nn.LSTM, "forward"),
            *[(getattr(quantizable, n), "forward") for n in ("LSTMCell", "_LSTMSingleLayer", "_LSTMLayer", "LSTM")],
            *decompositions("lstm", "rnn"), *torch_compilers(), *autograd(), "lstm", "rnn"]


def _gru_references() -> list:
    """A GRU whose reset and update gates share (negated) weights computes the MGU."""
    from .. import gru

    return [gru.gru_step, (gru.GRUCell, "forward"), (gru.GRU, "forward"), *recurrent_layers(),
            (torch.nn.GRUCell, "forward"), (torch.nn.GRU, "forward"),
            *decompositions("gru", "rnn"), *torch_compilers(), "gru", "rnn"]


def _ctc_references() -> list:
    from .. import ctc

    return [ctc.ctc_loss, ctc._log_likelihood, ctc._alpha_step, (torch.nn.CTCLoss, "forward"),
            (torch.nn.functional, "ctc_loss"), *torch_compilers(), "ctc"]


register({"lstm_backward": _lstm_references, "mgu_cell_forward": _gru_references,
          "counting_cell": lambda: [], "ctc_log_beta": _ctc_references})


def _cell_cases(seed: int, trials: int, gates: int):
    """Fresh random cases for a gated cell whose weights have ``gates`` blocks of H rows.

    Yields ``(x, h, c, W_ih, W_hh, b_ih, b_hh)`` with x (B, I), h and c (B, H), W_ih (gates H, I),
    W_hh (gates H, H), biases (gates H,); float32 and float64 alternate, B = 1 and H = 1 included.
    """
    g = torch.Generator().manual_seed(seed)
    sizes = [(1, 1, 1), (3, 2, 4)] + [tuple(int(v) for v in torch.randint(1, 7, (3,), generator=g))
                                      for _ in range(trials)]
    for k, (B, I, H) in enumerate(sizes[:trials]):
        dtype = torch.float64 if k % 2 else torch.float32

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        yield randn(B, I), randn(B, H), randn(B, H), randn(gates * H, I), randn(gates * H, H), \
            randn(gates * H), randn(gates * H)


# ------------------------------------------------------------------------------ 1. the LSTM's backward step

LSTM_GRADS = ("x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh")


def lstm_backward_reference(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next) -> dict:
    """The gradients of L = <dh_next, h'> + <dc_next, c'> through torch's LSTM cell, by autograd."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, h, c, W_ih, W_hh, b_ih, b_hh)]
    x, h, c, W_ih, W_hh, b_ih, b_hh = leaves
    z_i, z_f, z_g, z_o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)  # torch's order i, f, g, o
    c_next = torch.sigmoid(z_f) * c + torch.sigmoid(z_i) * torch.tanh(z_g)
    h_next = torch.sigmoid(z_o) * torch.tanh(c_next)
    loss = (h_next * dh_next).sum() + (c_next * dc_next).sum()
    return dict(zip(LSTM_GRADS, torch.autograd.grad(loss, leaves)))


def check_lstm_backward(fn: Callable, trials: int = 6, seed: int = 303) -> None:
    """Check ``fn(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next) -> grads``.

    The LSTM cell in torch's convention (gate blocks i, f, g, o; no peepholes), x (B, I), h and c
    (B, H); dh_next and dc_next (B, H) are the gradients that reach h' and c' from above. grads is a
    dict with the keys x, h, c, W_ih, W_hh, b_ih and b_hh: the gradient of
    L = sum(dh_next * h') + sum(dc_next * c') with respect to each, shaped like it, in its dtype.
    Tried in float32 and float64.
    """
    item = "lstm_backward"
    g = torch.Generator().manual_seed(item_seed(item, seed) + 1)
    for args in _cell_cases(item_seed(item, seed), trials, 4):
        B, H, dtype = args[1].shape[0], args[1].shape[1], args[0].dtype
        upstream = (torch.randn(B, H, generator=g, dtype=dtype), torch.randn(B, H, generator=g, dtype=dtype))
        out = call(item, fn, *(a.clone() for a in (*args, *upstream)))
        expected = lstm_backward_reference(*args, *upstream)
        if type(out) is not dict or set(out) != set(LSTM_GRADS):
            keys = sorted(map(str, out)) if type(out) is dict else type(out).__name__
            fail(item, f"expected a dict of gradients with the keys {sorted(LSTM_GRADS)}, got {keys}")
        for name in LSTM_GRADS:
            guard_tensor(f"{item}['{name}']", out[name], tuple(expected[name].shape), dtype)
            close(item, out[name].detach(), expected[name],
                  what=f"gradient {name} for B={B}, I={args[0].shape[1]}, H={H} ({dtype})")


# ------------------------------------------------------------------------------ 2. the minimal gated unit

def mgu_reference(x, h, W_ih, W_hh, b_ih, b_hh) -> torch.Tensor:
    """h' of the minimal gated unit (Zhou et al., 2016): gate blocks f, n."""
    a_f, a_n = (x @ W_ih.T + b_ih).chunk(2, dim=1)  # (B, H) each
    W_hf, W_hn = W_hh.chunk(2, dim=0)
    b_hf, b_hn = b_hh.chunk(2)
    f = torch.sigmoid(a_f + h @ W_hf.T + b_hf)
    n = torch.tanh(a_n + (f * h) @ W_hn.T + b_hn)  # the one gate also resets, before the product
    return (1 - f) * h + f * n


def check_mgu_cell_forward(fn: Callable, trials: int = 6, seed: int = 311) -> None:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h_next``, the minimal gated unit.

    One gate f does the GRU's two jobs. Weight blocks f, n: W_ih (2H, I), W_hh (2H, H), b_ih and
    b_hh (2H,); f = sigmoid(W_if x + b_if + W_hf h + b_hf),
    n = tanh(W_in x + b_in + W_hn (f * h) + b_hn), h_next = (1 - f) * h + f * n, all (B, H).
    """
    item = "mgu_cell_forward"
    for x, h, _, W_ih, W_hh, b_ih, b_hh in _cell_cases(item_seed(item, seed), trials, 2):
        args = (x, h, W_ih, W_hh, b_ih, b_hh)
        out = call(item, fn, *(a.clone() for a in args))
        expected = mgu_reference(*args)
        guard_tensor(item, out, tuple(h.shape), h.dtype)
        B, I, H = x.shape[0], x.shape[1], h.shape[1]
        close(item, out.detach(), expected, what=f"h_next for B={B}, I={I}, H={H} ({h.dtype})")


# ------------------------------------------------------------------------------ 3. a counter of one's own

def counting_sequences(generator: torch.Generator, T: int, B: int) -> torch.Tensor:
    """Random inputs for the homework's counter, (B, T, 3): x1 an integer from -9 to 9; x2 = 1 (add
    x1, 40 %), -1 (reset, 15 %) or 0 (halve the memory); x3 = 1 (show the memory, 30 %) or 0."""
    x1 = torch.randint(-9, 10, (B, T), generator=generator).double()
    u = torch.rand(B, T, generator=generator, dtype=torch.float64)
    x2 = (u < 0.4).double() - (u > 0.85).double()
    x3 = (torch.rand(B, T, generator=generator, dtype=torch.float64) < 0.3).double()
    return torch.stack([x1, x2, x3], dim=-1)  # (B, T, 3)


def counter_outputs(xs: torch.Tensor) -> torch.Tensor:
    """What the homework's counter outputs for inputs xs (B, T, 3): (B, T).

    The memory starts at 0; at each step x2 = 1 adds x1 to it, x2 = -1 resets it to 0 and x2 = 0
    halves it; the output is the memory (after the step's update) when x3 = 1 and the memory is
    positive, else 0.
    """
    m = xs.new_zeros(xs.shape[0])  # (B,)
    ys = []
    for t in range(xs.shape[1]):
        x1, x2, x3 = xs[:, t].unbind(-1)  # (B,) each
        m = torch.where(x2 == 1, m + x1, torch.where(x2 == -1, torch.zeros_like(m), m / 2))
        ys.append(torch.where((x3 == 1) & (m > 0), m, torch.zeros_like(m)))
    return torch.stack(ys, dim=1)  # (B, T)


def run_counting_cell(W: torch.Tensor, b: torch.Tensor, p: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Run the homework's one-cell LSTM with weights W (4, 3), b (4,) (rows i, f, g, o) and
    peepholes p (3,) (p_i, p_f, p_o) on xs (B, T, 3); returns the outputs y, (B, T).

    z = W x + b; i = sigmoid(z_i + p_i c), f = sigmoid(z_f + p_f c) (they peek at the memory c
    before the step); g = z_g, not squashed; c' = f c + i g; o = sigmoid(z_o + p_o c') (it peeks at
    the new memory); y = o c', not squashed; c = 0 at the start, no recurrent weights. It is Greff
    et al.'s vanilla LSTM with one cell and identity activations, in W's dtype.
    """
    xs = xs.to(W.dtype)
    c = xs.new_zeros(xs.shape[0])  # (B,)
    ys = []
    for t in range(xs.shape[1]):
        z_i, z_f, z_g, z_o = (xs[:, t] @ W.T + b).unbind(-1)  # (B,) each
        c = torch.sigmoid(z_f + p[1] * c) * c + torch.sigmoid(z_i + p[0] * c) * z_g
        ys.append(torch.sigmoid(z_o + p[2] * c) * c)
    return torch.stack(ys, dim=1)  # (B, T)


def _guard_weights(item: str, out: Any) -> tuple:
    """The counter's weights: a tuple (W, b, p) of exact, finite float tensors (4, 3), (4,), (3,)."""
    if not isinstance(out, tuple) or tuple.__len__(out) != 3:
        fail(item, f"expected a tuple (W, b, p) of three tensors, W (4, 3), b (4,) and p (3,), got {type(out).__name__}")
    values = tuple(tuple.__getitem__(out, i) for i in range(3))
    for name, value, shape in zip("Wbp", values, ((4, 3), (4,), (3,))):
        if type(value) is not torch.Tensor or not value.is_floating_point():
            fail(item, f"expected {name} to be a floating-point torch.Tensor, got {type(value).__name__}"
                 + (f" of dtype {value.dtype}" if isinstance(value, torch.Tensor) else ""))
        if tuple(value.shape) != shape:
            fail(item, f"expected {name} of shape {shape}, got {tuple(value.shape)}")
        if not torch.isfinite(value).all():
            fail(item, f"{name} has entries that are not finite numbers")
    return tuple(v.detach().double() for v in values)


def check_counting_cell(fn: Callable, trials: int = 8, seed: int = 313, atol: float = 0.1) -> None:
    """Check that ``fn() -> (W, b, p)`` makes ``run_counting_cell`` the homework's counter.

    On random sequences of 5 to 20 steps (``counting_sequences``) every output must be within
    ``atol`` of the counter's (``counter_outputs``).
    """
    item = "counting_cell"
    W, b, p = _guard_weights(item, call(item, fn))
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for _ in range(trials):
        T = int(torch.randint(5, 21, (), generator=g))
        xs = counting_sequences(g, T, 16)  # (16, T, 3)
        ys, expected = run_counting_cell(W, b, p, xs), counter_outputs(xs)  # (16, T) each
        wrong = ((ys - expected).abs() > atol) | ~torch.isfinite(ys)  # (16, T)
        if wrong.any():
            n = int(wrong.any(dim=1).nonzero()[0])  # the first sequence the cell gets wrong
            rows = "\n".join(f"  x = ({x[0]:+.0f}, {x[1]:+.0f}, {x[2]:.0f})   counter {e:7.3f}   your cell {y:10.4g}"
                             for x, e, y in zip(xs[n].tolist(), expected[n].tolist(), ys[n].tolist()))
            fail(item, f"on this random sequence an output is more than {atol} from the counter's:\n{rows}")


# ------------------------------------------------------------------------------ 4. CTC's backward recursion

def ctc_log_beta_reference(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log beta_t(s), (T, 2S + 1), blank 0, by the backward recursion (Graves et al., 2006), with the
    emission at t included: beta_T(2S) = y^T_blank, beta_T(2S - 1) = y^T_{l_S};
    beta_t(s) = (beta_{t+1}(s) + beta_{t+1}(s + 1) + [skip] beta_{t+1}(s + 2)) y^t_{l'_s}."""
    T, S = log_probs.shape[0], target.shape[0]
    ext = target.new_zeros(2 * S + 1)  # l' = (0, l_1, 0, ..., l_S, 0)
    ext[1::2] = target
    skip = torch.zeros(2 * S + 1, dtype=torch.bool)  # may a path jump from s + 2 back to s?
    skip[:-2] = (ext[:-2] != 0) & (ext[:-2] != ext[2:])
    minus_inf = torch.tensor(-math.inf, dtype=log_probs.dtype)
    beta = torch.full((2 * S + 1,), -math.inf, dtype=log_probs.dtype)
    beta[-2:] = log_probs[T - 1, ext[-2:]]
    rows = [beta]
    for t in range(T - 2, -1, -1):
        one = torch.cat([beta[1:], minus_inf[None]])  # beta_{t+1}(s + 1)
        two = torch.where(skip, torch.cat([beta[2:], minus_inf.expand(2)]), minus_inf)  # beta_{t+1}(s + 2)
        beta = torch.logsumexp(torch.stack([beta, one, two]), dim=0) + log_probs[t, ext]
        rows.append(beta)
    return torch.stack(rows[::-1])  # (T, 2S + 1)


def _ctc_cases(seed: int, trials: int):
    """(log_probs (T, C), target (S,)): repeated labels, the shortest possible T, impossible cases."""
    g = torch.Generator().manual_seed(seed)
    fixed = [([1, 1], 3, 3), ([2, 2, 1], 3, 3), ([1], 1, 2), ([1, 2, 3, 1], 3, 5), ([3, 3, 3], 7, 4)]
    for k in range(trials):  # (target, T, C): T = 3 is the least for [1, 1], too short for [2, 2, 1]
        if k < len(fixed):
            labels, T, C = fixed[k]
            target = torch.tensor(labels)
        else:
            C = int(torch.randint(2, 7, (), generator=g))
            target = torch.randint(1, C, (int(torch.randint(1, 6, (), generator=g)),), generator=g)
            shortest = len(target) + int((target[1:] == target[:-1]).sum())
            T = max(1, shortest + int(torch.randint(-1, 6, (), generator=g)))  # one in seven cannot be done
        dtype = torch.float64 if k % 2 else torch.float32
        scale = 1 + 2 * torch.rand((), generator=g)  # from flat to peaked distributions
        yield torch.log_softmax(scale * torch.randn(T, C, generator=g), dim=1).to(dtype), target


def check_ctc_log_beta(fn: Callable, trials: int = 10, seed: int = 317) -> None:
    """Check ``fn(log_probs, target) -> log_beta``, CTC's backward recursion in log space.

    log_probs (T, C) are log-softmax outputs, class 0 the blank; target (S,) int64 labels from 1 to
    C - 1. log_beta (T, 2S + 1), in log_probs' dtype, holds log beta_t(s) over the padded label
    sequence l' = (0, l_1, 0, ..., l_S, 0), -inf where beta is 0 (``ctc_log_beta_reference``).
    """
    item = "ctc_log_beta"
    for log_probs, target in _ctc_cases(item_seed(item, seed), trials):
        out = call(item, fn, log_probs.clone(), target.clone())
        expected = ctc_log_beta_reference(log_probs, target)
        guard_tensor(item, out, tuple(expected.shape), log_probs.dtype)
        tol = {"rtol": 1e-5, "atol": 1e-5} if log_probs.dtype == torch.float32 else {}
        _close_log(item, out.detach(), expected, tol,
                   what=f"log_beta for T={log_probs.shape[0]}, C={log_probs.shape[1]}, target={target.tolist()}")


def _close_log(item: str, got: torch.Tensor, expected: torch.Tensor, tol: dict, what: str) -> None:
    """Log-space values: -inf exactly where expected, close elsewhere."""
    impossible = torch.isneginf(expected)
    if not torch.equal(torch.isneginf(got), impossible):
        index = tuple(int(i) for i in (torch.isneginf(got) != impossible).nonzero()[0])
        fail(item, f"the {what} differs from the reference: at (t, s) = {index} expected "
                   f"{expected[index].item()}, got {got[index].item()} (beta is 0 exactly where no path "
                   "can finish the target from there)")
    close(item, got.masked_fill(impossible, 0), expected.masked_fill(impossible, 0), what=what, **tol)
