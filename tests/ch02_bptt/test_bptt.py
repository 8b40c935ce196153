"""seqmem.bptt (chapter 2): NumPy BPTT pinned to torch autograd and finite differences; the same
measurement for any cell; truncated BPTT in fit (seqmem.TruncatedBPTT); the memory BPTT needs."""
from typing import NamedTuple

import numpy as np
import pytest
import torch

import seqmem
from seqmem import bptt

TOL = dict(atol=1e-8, rtol=1e-8)
KEYS = ("W_xh", "W_hh", "b", "h0")


def _problem(T, B, I, H, seed=0, dtype=np.float64, scale=0.8):
    """Random params, inputs x_1..x_T (T, B, I), h_0 (B, H) and direct signals dL/dh_t (T, B, H)."""
    rng = np.random.default_rng(seed)
    params = {"W_xh": rng.normal(size=(H, I)) * scale, "W_hh": rng.normal(size=(H, H)) * scale / np.sqrt(H),
              "b": rng.normal(size=H) * 0.1}
    params = {k: v.astype(dtype) for k, v in params.items()}
    xs, h0, dhs = (rng.normal(size=s).astype(dtype) for s in ((T, B, I), (B, H), (T, B, H)))
    return params, xs, h0, dhs


def _leaves(params, h0):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    return p, torch.tensor(h0, requires_grad=True)


def _torch_step(p, x, h):
    return torch.tanh(x @ p["W_xh"].T + h @ p["W_hh"].T + p["b"])  # (B, H)


def _torch_grads(p, h0):
    return {**{k: p[k].grad for k in p}, "h0": h0.grad}


def _torch_full(params, xs, h0, dhs, detach_previous=False):
    """Autograd on L = Σ_t <h_t, dhs_t>; ``detach_previous`` cuts every h_{t-1} but h_0 from the graph."""
    p, h0_t = _leaves(params, h0)
    h, hs = h0_t, []
    for t, x in enumerate(torch.from_numpy(xs)):
        h = _torch_step(p, x, h.detach() if detach_previous and t > 0 else h)
        hs.append(h)
    hs = torch.stack(hs)  # (T, B, H)
    (hs * torch.from_numpy(dhs)).sum().backward()
    return hs.detach(), _torch_grads(p, h0_t)


def _torch_windows(params, xs, h0, dhs, k):
    """Truncated BPTT by definition: the loss at step t sees only steps t-k+1..t; h_{t-k} is a constant."""
    p, h0_t = _leaves(params, h0)
    hs, _ = bptt.forward(params, xs, h0)
    for t in range(len(xs)):  # 0-based step t; its window starts after state t - k
        first = max(t - k + 1, 0)
        h = h0_t if first == 0 else torch.tensor(hs[first - 1])
        for s in range(first, t + 1):
            h = _torch_step(p, torch.from_numpy(xs[s]), h)
        (h * torch.from_numpy(dhs[t])).sum().backward()
    return _torch_grads(p, h0_t)


def _assert_grads(ours, ref, **tol):
    assert set(ours) == set(KEYS)
    for k in KEYS:
        torch.testing.assert_close(torch.from_numpy(ours[k]), ref[k], **(tol or TOL), msg=k)


SHAPES = [(1, 1, 1, 1), (1, 3, 2, 4), (5, 1, 3, 2), (7, 4, 5, 6), (20, 3, 4, 8)]


@pytest.mark.parametrize("T,B,I,H", SHAPES)
def test_bptt_matches_torch_autograd(T, B, I, H):
    params, xs, h0, dhs = _problem(T, B, I, H, seed=T * 100 + B)
    hs, cache = bptt.forward(params, xs, h0)
    ref_hs, ref = _torch_full(params, xs, h0, dhs)
    assert hs.shape == (T, B, H)
    torch.testing.assert_close(torch.from_numpy(hs), ref_hs, **TOL)
    _assert_grads(bptt.backward(params, cache, dhs), ref)


def test_bptt_matches_central_finite_differences():
    params, xs, h0, dhs = _problem(3, 2, 2, 3, seed=7)
    grads = bptt.backward(params, bptt.forward(params, xs, h0)[1], dhs)
    eps = 1e-6

    def loss():
        return float(np.sum(bptt.forward(params, xs, h0)[0] * dhs))  # L = Σ_t <h_t, dhs_t>

    for k, a in [*params.items(), ("h0", h0)]:
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):  # perturb one entry at a time, in place
            old = a[i]
            a[i] = old + eps
            up = loss()
            a[i] = old - eps
            numeric[i] = (up - loss()) / (2 * eps)
            a[i] = old
        np.testing.assert_allclose(grads[k], numeric, atol=1e-8, rtol=1e-6, err_msg=k)


def test_float32_stays_float32_and_agrees_with_float64():
    p64, xs, h0, dhs = _problem(6, 3, 4, 5, seed=3)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    hs32, cache32 = bptt.forward(p32, xs.astype(np.float32), h0.astype(np.float32))
    g32 = bptt.backward(p32, cache32, dhs.astype(np.float32), truncate=2)
    hs64, cache64 = bptt.forward(p64, xs, h0)
    g64 = bptt.backward(p64, cache64, dhs, truncate=2)
    assert hs32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32.values())
    np.testing.assert_allclose(hs32, hs64, atol=1e-5)
    for k in KEYS:
        np.testing.assert_allclose(g32[k], g64[k], atol=1e-4, rtol=1e-4, err_msg=k)


def test_truncate_none_or_at_least_T_is_full_bptt():
    params, xs, h0, dhs = _problem(6, 2, 3, 4, seed=1)
    _, cache = bptt.forward(params, xs, h0)
    _, ref = _torch_full(params, xs, h0, dhs)
    for k in (None, 6, 50):
        _assert_grads(bptt.backward(params, cache, dhs, truncate=k), ref)
    # the windowed algorithm itself, with windows as long as the sequence, is full BPTT as well
    windowed = {k: np.zeros_like(v) for k, v in [*params.items(), ("h0", h0)]}
    bptt._backward_truncated(params["W_hh"], cache["xs"], cache["h"], dhs, windowed, 6)
    _assert_grads(windowed, ref)


def test_truncate_1_is_bptt_with_every_previous_state_detached():
    params, xs, h0, dhs = _problem(5, 3, 2, 4, seed=2)
    hs, cache = bptt.forward(params, xs, h0)
    ours = bptt.backward(params, cache, dhs, truncate=1)
    _assert_grads(ours, _torch_full(params, xs, h0, dhs, detach_previous=True)[1])
    # by hand: δ_t = (1 - h_t^2) ⊙ dhs_t, no recurrence; only δ_1 reaches h_0
    delta = (1 - hs**2) * dhs  # (T, B, H)
    h_prev = np.concatenate([h0[None], hs[:-1]])  # (T, B, H): h_0, ..., h_{T-1}
    np.testing.assert_allclose(ours["W_hh"], np.einsum("tbi,tbj->ij", delta, h_prev), **TOL)
    np.testing.assert_allclose(ours["b"], delta.sum(axis=(0, 1)), **TOL)
    np.testing.assert_allclose(ours["h0"], delta[0] @ params["W_hh"], **TOL)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_truncated_bptt_matches_windowed_autograd(k):
    params, xs, h0, dhs = _problem(8, 2, 3, 5, seed=10 + k, scale=1.5)
    _, cache = bptt.forward(params, xs, h0)
    ours = bptt.backward(params, cache, dhs, truncate=k)
    _assert_grads(ours, _torch_windows(params, xs, h0, dhs, k))
    full = bptt.backward(params, cache, dhs)
    assert not np.allclose(ours["W_hh"], full["W_hh"], atol=1e-6)  # truncation does change something


def test_gradient_norms_match_autograd_and_vanish_for_small_weights():
    params, xs, h0, _ = _problem(12, 3, 2, 6, seed=4, scale=0.5)
    _, cache = bptt.forward(params, xs, h0)
    dh_T = np.random.default_rng(0).normal(size=(3, 6))
    p, h = _leaves(params, h0)[0], torch.tensor(h0)
    hs = []
    for x in torch.from_numpy(xs):
        h = _torch_step(p, x, h)
        h.retain_grad()
        hs.append(h)
    (hs[-1] * torch.from_numpy(dh_T)).sum().backward()
    ref = np.array([h.grad.norm().item() for h in hs])
    np.testing.assert_allclose(bptt.gradient_norms(params, cache, dh_T), ref, rtol=1e-10)
    norms = bptt.gradient_norms(params, cache)
    assert norms[-1] == pytest.approx(1.0) and norms.shape == (12,)
    assert np.all(np.diff(norms) > 0) and norms[0] < 1e-3  # vanishing: shrinks at every step back


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_is_torchs(max_norm, dtype):
    params, xs, h0, dhs = _problem(5, 2, 3, 4, seed=5, dtype=dtype)
    grads = bptt.backward(params, bptt.forward(params, xs, h0)[1], dhs)
    before = {k: g.copy() for k, g in grads.items()}
    clipped, norm = bptt.clip_grad_norm(grads, max_norm)
    tensors = [torch.zeros(g.shape, dtype=torch.float64) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g, dtype=torch.float64)
    ref_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm).item()
    assert norm == pytest.approx(ref_norm, rel=1e-6)
    for (k, c), t in zip(clipped.items(), tensors):
        assert c.dtype == dtype
        np.testing.assert_allclose(c, t.grad.numpy(), rtol=1e-5, err_msg=k)
        np.testing.assert_array_equal(grads[k], before[k])  # the input is left alone
    total = np.sqrt(sum(np.sum(c.astype(np.float64) ** 2) for c in clipped.values()))
    assert total == pytest.approx(min(norm, max_norm), rel=1e-5)


def _bad(T=3, B=2, I=3, H=4):
    return _problem(T, B, I, H)


@pytest.mark.parametrize("change,call,error,match", [
    (lambda p, xs, h0: p.pop("b"), "forward", ValueError, r"missing \['b'\]"),
    (lambda p, xs, h0: p.update(W_hh=np.zeros((4, 3))), "forward", ValueError, r"W_hh'\] must have shape \(H, H\) = \(4, 4\), got \(4, 3\)"),
    (lambda p, xs, h0: p.update(W_xh=np.zeros((5, 3))), "forward", ValueError, r"W_xh'\] must have shape \(H, I\) = \(4, \*\), got \(5, 3\)"),
    (lambda p, xs, h0: p.update(b=np.zeros((1, 4))), "forward", ValueError, r"b'\] must have shape \(H,\) = \(4,\), got \(1, 4\)"),
    (lambda p, xs, h0: p.update(b=np.zeros(4, np.float32)), "forward", TypeError, "share one dtype"),
    (lambda p, xs, h0: p.update(b=[0.0] * 4), "forward", TypeError, "must be a numpy array"),
])
def test_bad_params_raise_clear_errors(change, call, error, match):
    params, xs, h0, _ = _bad()
    change(params, xs, h0)
    with pytest.raises(error, match=match):
        bptt.forward(params, xs, h0)


@pytest.mark.parametrize("xs_shape,h0_shape,match", [
    ((3, 2), (2, 4), r"xs must have shape \(T, B, I\) = \(\*, \*, 3\), got \(3, 2\)"),
    ((3, 2, 5), (2, 4), r"xs must have shape \(T, B, I\) = \(\*, \*, 3\), got \(3, 2, 5\)"),
    ((3, 2, 3), (3, 4), r"h0 must have shape \(B, H\) = \(2, 4\), got \(3, 4\)"),
])
def test_bad_inputs_raise_clear_errors(xs_shape, h0_shape, match):
    params = _bad()[0]
    with pytest.raises(ValueError, match=match):
        bptt.forward(params, np.zeros(xs_shape), np.zeros(h0_shape))


def test_bad_backward_arguments_raise_clear_errors():
    params, xs, h0, dhs = _bad()
    _, cache = bptt.forward(params, xs, h0)
    with pytest.raises(ValueError, match=r"dhs must have shape \(T, B, H\) = \(3, 2, 4\), got \(2, 2, 4\)"):
        bptt.backward(params, cache, dhs[:2])
    with pytest.raises(ValueError, match="truncate must be None or a positive int, got 0"):
        bptt.backward(params, cache, dhs, truncate=0)
    with pytest.raises(ValueError, match="cache must be the dict that forward returned"):
        bptt.backward(params, {"hs": dhs}, dhs)
    with pytest.raises(ValueError, match="max_norm must be a positive number"):
        bptt.clip_grad_norm({"b": params["b"]}, 0.0)


# ---- BPTT for any cell, by autograd ---------------------------------------------------------------


def test_state_gradient_norms_of_a_tanh_rnn_are_numpy_bptts():
    """The same measurement two ways: autograd through seqmem.RNNCell, and the NumPy BPTT of this
    module (time first) on the cell's weights."""
    torch.manual_seed(0)
    cell = seqmem.RNNCell(3, 6).double()
    xs = torch.randn(4, 12, 3, dtype=torch.float64)  # (B, T, I)
    norms = bptt.state_gradient_norms(cell, xs)
    params = {"W_xh": cell.weight_ih.detach().numpy(), "W_hh": cell.weight_hh.detach().numpy(),
              "b": (cell.bias_ih + cell.bias_hh).detach().numpy()}
    _, cache = bptt.forward(params, xs.transpose(0, 1).numpy(), np.zeros((4, 6)))
    np.testing.assert_allclose(norms, bptt.gradient_norms(params, cache), rtol=1e-10)


def test_state_gradient_norms_of_an_lstm_follow_its_state():
    torch.manual_seed(1)
    cell = seqmem.LSTMCell(2, 5).double()
    xs = torch.randn(3, 8, 2, dtype=torch.float64)
    norms = bptt.state_gradient_norms(cell, xs)
    assert isinstance(norms, seqmem.LSTMState) and norms.h.shape == norms.c.shape == (8,)
    assert norms.h[-1] == pytest.approx(1.0)  # the unit signal on h_T
    # by hand, the gradient of L = <h_T, u> with respect to c_3
    state, c3 = cell.initial_state(3), None
    for t in range(8):
        state, _ = cell(state, xs[:, t])
        if t == 2:
            c3 = state.c
            c3.retain_grad()
    (state.h.sum() / state.h.numel() ** 0.5).backward()
    assert norms.c[2] == pytest.approx(c3.grad.norm().item(), rel=1e-12)
    with pytest.raises(ValueError, match=r"xs must have shape \(B, T, I\)"):
        bptt.state_gradient_norms(cell, xs[0])


# ---- truncated BPTT in the training loop: seqmem.TruncatedBPTT ---------------------------------


def _tagger(I, H, O):
    """An RNN and a linear read-out at every step, batch first: the model of the fit tests."""
    return seqmem.Tagger(seqmem.RNN(I, H, batch_first=True), O)


def test_truncated_bptt_takes_one_step_per_chunk_and_cuts_the_graph_between_chunks():
    torch.manual_seed(0)
    model = _tagger(4, 6, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls, steps = [], []  # (chunk length, incoming state, outgoing state, x, y) per loss_fn call

    def loss_fn(m, batch):  # the same signature as without truncation
        x, y = batch
        state_in = m.state
        loss, logs = seqmem.heads.tagging_loss(m, batch)
        calls.append((x.shape[1], state_in, m.state.detach().clone(), x, y))
        return loss, logs

    step = opt.step

    def spy(*a, **kw):
        # At each step the gradient must be the chunk's own: recompute it from the incoming state
        # taken as a constant, and compare. A gradient reaching into earlier chunks would differ.
        _, state_in, _, x, y = calls[-1]
        logits, _ = model(x, None if state_in is None else state_in.clone())
        ref = torch.autograd.grad(seqmem.heads.cross_entropy(logits, y), list(model.parameters()))
        for p, r in zip(model.parameters(), ref):
            torch.testing.assert_close(p.grad, r)
        steps.append(len(calls))
        return step(*a, **kw)

    opt.step = spy
    data = [seqmem.tasks.delayed_echo(3, 10, delay=2, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    hist = seqmem.fit(model, data, loss_fn, optimizer=opt, strategy=seqmem.TruncatedBPTT(3), progress=False)
    assert [c[0] for c in calls] == [3, 3, 3, 1] * 2  # T = 10 in chunks of 3: four steps per batch
    assert steps == list(range(1, 9)) and len(hist.loss) == 8 and len(hist.logs["accuracy"]) == 8
    for i, (_, state_in, *_) in enumerate(calls):
        if i % 4 == 0:
            assert state_in is None  # each batch starts afresh
        else:  # the previous chunk's state carries on, cut from its graph
            assert state_in.grad_fn is None and not state_in.requires_grad
            torch.testing.assert_close(state_in, calls[i - 1][2])


class _HC(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor


class _Summer(torch.nn.Module):
    """A model with a structured state: h adds up its inputs' images, c = 2 h."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x, state=None):
        h = self.lin(x).sum(1) + (0 if state is None else state.h)  # (B, 2)
        return h, _HC(h, 2 * h)


def test_truncated_bptt_detaches_structured_states():
    torch.manual_seed(0)
    seen = []

    def loss_fn(m, batch):
        seen.append(m.state)
        x, y = batch
        h, _ = m(x)
        return (h - y.sum(1)).pow(2).mean()

    x = torch.randn(4, 6, 2)
    seqmem.fit(_Summer(), [(x, x)], loss_fn, strategy=seqmem.TruncatedBPTT(2), progress=False)
    assert seen[0] is None and len(seen) == 3
    assert all(type(s) is _HC and s.h.grad_fn is None and s.c.grad_fn is None for s in seen[1:])


def test_truncated_bptt_checks_its_arguments():
    x = torch.randn(3, 5, 2)
    loss = seqmem.heads.tagging_loss
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        seqmem.TruncatedBPTT(0)
    summer = _Summer()
    summer.forward = lambda x, state=None: x.sum()  # forgets to return its state
    with pytest.raises(ValueError, match=r"must return \(output, state\)"):
        seqmem.fit(summer, [(x, x)], lambda m, b: m(b[0]), strategy=seqmem.TruncatedBPTT(2), progress=False)
    with pytest.raises(ValueError, match=r"must share \(B, T\), got \(3, 5\) and \(3, 4\)"):
        seqmem.fit(_tagger(2, 3, 2), [(x, x[:, :4])], loss, strategy=seqmem.TruncatedBPTT(2), progress=False)
    with pytest.raises(ValueError, match=r"batch element 0 must be a batch-first tensor \(B, T, \.\.\.\), got \(3,\)"):
        seqmem.fit(_tagger(2, 3, 2), [(torch.zeros(3), x)], loss, strategy=seqmem.TruncatedBPTT(2), progress=False)


def test_truncated_bptt_learns_delayed_echo():
    """Learning: seed 0, 150 batches of 32 echo sequences (delay 2, T = 24) in chunks of 6, Adam
    1e-2, H = 32: >= 95% right after the delay on 500 fresh sequences, where chance is 1/4."""
    g = seqmem.seed(0)
    model = _tagger(4, 32, 4)
    hist = seqmem.fit(model, lambda i: seqmem.tasks.delayed_echo(32, 24, delay=2, generator=g),
                      seqmem.heads.tagging_loss, steps=150, lr=1e-2, strategy=seqmem.TruncatedBPTT(6), progress=False)
    assert len(hist.loss) == 150 * 4
    x, y = seqmem.tasks.delayed_echo(500, 24, delay=2, generator=g)
    with torch.no_grad():
        acc = seqmem.metrics.accuracy(model(x)[0][:, 2:], y[:, 2:])
    assert acc >= 0.95, acc


# ---- the memory of BPTT ----------------------------------------------------------------------


def test_saved_tensor_bytes_counts_what_autograd_keeps_and_nothing_under_no_grad():
    a = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    y, n = bptt.saved_tensor_bytes(lambda: (a * b).sum())
    assert n == a.nbytes + b.nbytes  # mul saves both factors; sum saves nothing but a shape
    y.backward()  # the graph is intact
    torch.testing.assert_close(a.grad, b.detach())
    _, n = bptt.saved_tensor_bytes(lambda: torch.tanh(a) * 2)
    assert n == a.nbytes  # tanh saves its output; multiplying by a Python number saves nothing
    _, n = bptt.saved_tensor_bytes(lambda: torch.tanh(a @ a.T) @ a)  # a saved by two ops: counted once
    assert n == a.nbytes + 3 * 3 * 8
    with torch.no_grad():
        assert bptt.saved_tensor_bytes(lambda: torch.tanh(a @ a.T) @ a)[1] == 0
    with pytest.raises(TypeError, match="expects a function to run, got Tensor"):
        bptt.saved_tensor_bytes(a)


def test_bptt_memory_grows_linearly_in_T():
    """Autograd keeps a (B, H) state and a (B, I) input for every step: a + b T bytes, exactly."""
    torch.manual_seed(0)
    B, I, H = 4, 3, 16
    rnn = torch.nn.RNN(I, H)
    Ts = [10, 20, 40, 80]
    saved = [bptt.saved_tensor_bytes(rnn, torch.randn(T, B, I))[1] for T in Ts]
    slopes = np.diff(saved) / np.diff(Ts)
    assert np.all(slopes == slopes[0]) and slopes[0] >= B * H * 4, (saved, slopes)
    params = {"W_xh": np.zeros((H, I)), "W_hh": np.zeros((H, H)), "b": np.zeros(H)}
    for T in Ts:  # the NumPy cache: h_0, ..., h_T and x_1, ..., x_T in float64
        _, cache = bptt.forward(params, np.zeros((T, B, I)), np.zeros((B, H)))
        assert sum(a.nbytes for a in cache.values()) == ((T + 1) * B * H + T * B * I) * 8
