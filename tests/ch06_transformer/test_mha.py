"""seqmem.MultiheadAttention (chapter 6) is a drop-in for torch.nn.MultiheadAttention.

Pinned here, after ``load_state_dict`` of torch's module: the outputs, the attention weights
(averaged and per head) and the gradients of the inputs and of every parameter equal torch's in
float64, for a grid of configurations (kdim and vdim != embed_dim, no bias, batch first, bias_k
and bias_v, the zero key) and of masks (none, key padding, attn_mask 2-D and 3-D, bool and float,
both together, mixed, the causal hint), on the from-scratch path and the fused one; unbatched
inputs; dropout; a query with nothing to attend to; the errors.
"""
import warnings

import pytest
import torch

import seqmem
from helpers import gen, randn

E, HEADS, B, L, S = 8, 2, 3, 4, 5
CONFIGS = {
    "default": dict(),
    "kdim-vdim": dict(kdim=3, vdim=5),
    "no-bias": dict(bias=False),
    "batch-first": dict(batch_first=True),
    "bias-kv": dict(add_bias_kv=True),
    "zero-attn": dict(add_zero_attn=True),
    "everything": dict(kdim=3, vdim=5, batch_first=True, bias=False, add_bias_kv=True, add_zero_attn=True),
}
# (need_weights, average_attn_weights, fused)
MODES = {"weights-averaged": (True, True, True), "weights-per-head": (True, False, True),
         "no-weights-fused": (False, True, True), "no-weights-scratch": (False, True, False)}


def _masks(dev):
    """Every kind of mask. No query loses all its keys (torch's weights path gives NaN there): the
    padding and the attn masks never drop key 0, and the causal mask keeps j <= i."""
    g = gen(7)
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[1, [1, 3]] = pad[2, 4] = True  # True: a padding key, ignored
    drop = torch.rand(B * HEADS, L, S, generator=g) < 0.4
    drop[..., 0] = False
    bias = torch.randn(B * HEADS, L, S, generator=g, dtype=torch.float64)
    bias[0, 1, 2:] = float("-inf")
    causal = torch.ones(L, S, dtype=torch.bool).triu(1)  # True above the diagonal: the future
    as_float = lambda m: torch.zeros(m.shape, dtype=torch.float64).masked_fill(m, float("-inf"))
    cases = {
        "none": {},
        "padding-bool": dict(key_padding_mask=pad),
        "padding-float": dict(key_padding_mask=as_float(pad)),
        "attn-bool-2d": dict(attn_mask=drop[0]),
        "attn-float-2d": dict(attn_mask=bias[0]),
        "attn-bool-3d": dict(attn_mask=drop),
        "attn-float-3d": dict(attn_mask=bias),
        "both-bool": dict(key_padding_mask=pad, attn_mask=drop),
        "both-float": dict(key_padding_mask=as_float(pad), attn_mask=bias[0]),
        "mixed": dict(key_padding_mask=pad, attn_mask=bias),
        "causal": dict(attn_mask=causal, is_causal=True),
        "causal-float-padding": dict(attn_mask=as_float(causal), is_causal=True, key_padding_mask=pad),
    }
    return {name: {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
            for name, kw in cases.items()}


def _pair(cfg, dev, **extra):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(E, HEADS, **cfg).to(dev, torch.float64)
    ours = seqmem.MultiheadAttention(E, HEADS, **cfg, **extra).to(dev, torch.float64)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _inputs(cfg, dev, seed=1, batched=True):
    g = gen(seed)
    kdim, vdim = cfg.get("kdim", E), cfg.get("vdim", E)
    if not batched:
        return randn(g, L, E, dev=dev), randn(g, S, kdim, dev=dev), randn(g, S, vdim, dev=dev)
    shapes = [(B, L, E), (B, S, kdim), (B, S, vdim)] if cfg.get("batch_first") else \
        [(L, B, E), (S, B, kdim), (S, B, vdim)]
    return tuple(randn(g, *s, dev=dev) for s in shapes)


def _run(module, inputs, **kwargs):
    """Output, weights (or None) and every gradient under fixed random cotangents."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    module.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates mixed mask types, which it still supports
        out, weights = module(*inputs, **kwargs)
    g = gen(2)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)).sum()
    if weights is not None:
        loss = loss + (weights * torch.randn(weights.shape, generator=g, dtype=out.dtype).to(out.device)).sum()
    loss.backward()
    return [out, weights, *(t.grad for t in inputs), *(p.grad for p in module.parameters())]


def _assert_equal(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("mask", list(_masks("cpu")))
@pytest.mark.parametrize("config", CONFIGS)
def test_equals_torch_outputs_weights_and_gradients(config, mask, mode, dev):
    cfg = CONFIGS[config]
    need_weights, average, fused = MODES[mode]
    ref, ours = _pair(cfg, dev, fused=fused)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    kwargs = dict(_masks(dev)[mask], need_weights=need_weights, average_attn_weights=average)
    inputs = _inputs(cfg, dev)
    expected = dict(kwargs)
    if kwargs.get("is_causal") and "key_padding_mask" not in kwargs and not need_weights and (
            cfg.get("add_bias_kv") or cfg.get("add_zero_attn")):
        # torch's fused path drops the mask for is_causal=True before it appends the extra key, which
        # the causal kernel then hides from every query: it disagrees with torch's own weights path.
        # Ours applies the mask given, as torch does without the hint.
        expected["is_causal"] = False
    _assert_equal(_run(ours, inputs, **kwargs), _run(ref, inputs, **expected))


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("config", ["default", "everything"])
def test_unbatched_inputs_equal_torch(config, need_weights, dev):
    cfg = CONFIGS[config]
    ref, ours = _pair(cfg, dev)
    inputs = _inputs(cfg, dev, batched=False)
    pad = torch.tensor([False, True, False, False, True], device=dev)
    per_head = torch.rand(HEADS, L, S, generator=gen(3)).to(dev) < 0.4
    per_head[..., 0] = False
    for kwargs in ({}, dict(key_padding_mask=pad), dict(attn_mask=per_head, average_attn_weights=False),
                   dict(attn_mask=per_head[0], key_padding_mask=pad)):
        got = _run(ours, inputs, need_weights=need_weights, **kwargs)
        if need_weights:
            assert got[1].shape == ((HEADS, L, S + cfg.get("add_bias_kv", 0) + cfg.get("add_zero_attn", 0))
                                    if "average_attn_weights" in kwargs else
                                    (L, S + cfg.get("add_bias_kv", 0) + cfg.get("add_zero_attn", 0)))
        assert got[0].shape == (L, E)
        _assert_equal(got, _run(ref, inputs, need_weights=need_weights, **kwargs))


def test_self_attention_on_one_tensor_and_float32(dev):
    """Self-attention (query is key is value, torch's packed path) and float32 on both of our paths."""
    torch.manual_seed(4)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True).to(dev)
    fast = seqmem.MultiheadAttention(16, 4, batch_first=True).to(dev)
    scratch = seqmem.MultiheadAttention(16, 4, batch_first=True, fused=False).to(dev)
    fast.load_state_dict(ref.state_dict())
    scratch.load_state_dict(ref.state_dict())
    x = torch.randn(2, 7, 16, device=dev)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(7, device=dev)
    expected = ref(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]
    for module in (fast, scratch):
        torch.testing.assert_close(module(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0], expected)
        torch.testing.assert_close(module(x, x, x, attn_mask=mask)[1], ref(x, x, x, attn_mask=mask)[1])


def test_heads_are_the_papers_formula():
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O with head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)."""
    torch.manual_seed(5)
    mha = seqmem.MultiheadAttention(E, HEADS, batch_first=True, bias=False).double()
    q, k, v = _inputs(dict(batch_first=True), "cpu")
    W_Q, W_K, W_V = mha.in_proj_weight.split(E)  # (E, E) each: head i owns rows i*d ... (i+1)*d - 1
    d = E // HEADS
    heads = []
    for i in range(HEADS):
        rows = slice(i * d, (i + 1) * d)
        Qi, Ki, Vi = q @ W_Q[rows].T, k @ W_K[rows].T, v @ W_V[rows].T  # (B, L, d), (B, S, d), (B, S, d)
        heads.append(torch.softmax(Qi @ Ki.transpose(1, 2) / d ** 0.5, dim=-1) @ Vi)  # eq. (1)
    by_hand = torch.cat(heads, dim=-1) @ mha.out_proj.weight.T  # (B, L, E)
    torch.testing.assert_close(mha(q, k, v)[0], by_hand)
    torch.testing.assert_close(mha(q, k, v, need_weights=False)[0], by_hand)


@pytest.mark.parametrize("need_weights", [True, False])
def test_dropout_on_the_weights_in_training_only(need_weights):
    ref, ours = _pair(dict(dropout=0.5), "cpu")
    inputs = [t.detach() for t in _inputs({}, "cpu")]
    if need_weights:  # the from-scratch path draws torch's dropout mask: the same weights
        torch.manual_seed(9)
        expected = ref(*inputs)
        torch.manual_seed(9)
        got = ours(*inputs)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)
        assert (got[1] == 0).any()  # some weights dropped
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(*inputs, need_weights=need_weights)[0], ref(*inputs)[0])
    ours.train()
    assert not torch.allclose(ours(*inputs, need_weights=need_weights)[0], ref(*inputs)[0])


@pytest.mark.parametrize("fused", [True, False])
def test_a_query_with_no_key_reads_nothing(fused):
    """All keys of sample 1 padded: zero weights and the output bias, no NaN in values or gradients;
    torch's fused path (need_weights=False) agrees, its weights path gives NaN."""
    ref, ours = _pair({}, "cpu", fused=fused)
    torch.nn.init.normal_(ours.out_proj.bias)
    ref.load_state_dict(ours.state_dict())
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[1] = True
    inputs = _inputs({}, "cpu")
    out, weights, *gradients = _run(ours, inputs, key_padding_mask=pad)
    assert not weights[1].any()
    torch.testing.assert_close(out[:, 1], ours.out_proj.bias.expand(L, E))
    assert not any(t.isnan().any() for t in [out, *gradients])
    _assert_equal(_run(ours, inputs, key_padding_mask=pad, need_weights=False),
                  _run(ref, inputs, key_padding_mask=pad, need_weights=False))
    assert ref(*inputs, key_padding_mask=pad)[1][1].isnan().all()


def test_initialisation_is_torchs():
    for cfg in CONFIGS.values():
        torch.manual_seed(6)
        ref = torch.nn.MultiheadAttention(E, HEADS, **cfg)
        torch.manual_seed(6)
        ours = seqmem.MultiheadAttention(E, HEADS, **cfg)
        for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, msg=name)


def _errors():
    t = torch.randn
    m = seqmem.MultiheadAttention(E, HEADS)
    q, k = t(L, B, E), t(S, B, E)
    return [
        (lambda: seqmem.MultiheadAttention(8, 3), "embed_dim must be a multiple of num_heads"),
        (lambda: seqmem.MultiheadAttention(8, 0), "num_heads must be a positive int"),
        (lambda: seqmem.MultiheadAttention(8, 2, dropout=1.5), r"dropout must be a number in \[0, 1\]"),
        (lambda: seqmem.MultiheadAttention(8, 2, kdim=0), "kdim must be a positive int"),
        (lambda: m(t(B, L, E, 1), k, k), r"query must be batched \(L, B, E\) or unbatched \(L, E\)"),
        (lambda: m(q, t(S, B, 3), k), r"key must have shape \(S, B, kdim\) with kdim = 8 .*got \(5, 3, 3\)"),
        (lambda: seqmem.MultiheadAttention(E, HEADS, vdim=4, batch_first=True)(t(B, L, E), t(B, S, E), t(B, S, E)),
         r"value must have shape \(B, S, vdim\) with vdim = 4"),
        (lambda: m(t(L, E), t(S, E, 1), t(S, E)), r"key must have shape \(S, kdim\).*unbatched"),
        (lambda: m(q, k, t(S + 1, B, E)), "key and value the length S"),
        (lambda: m(q, t(S, B + 1, E), t(S, B + 1, E)), "share the batch size"),
        (lambda: m(q.double(), k.double(), k.double()), "must have the parameters' dtype torch.float32"),
        (lambda: m(q, k, k, key_padding_mask=torch.zeros(S, B, dtype=torch.bool)),
         r"key_padding_mask must have shape \(3, 5\), got \(5, 3\)"),
        (lambda: m(q, k, k, key_padding_mask=torch.zeros(B, S, dtype=torch.long)),
         "key_padding_mask must be a bool tensor or of the query's dtype torch.float32, got torch.int64"),
        (lambda: m(q, k, k, attn_mask=torch.zeros(S, L, dtype=torch.bool)),
         r"attn_mask must have shape \(4, 5\) or \(6, 4, 5\), got \(5, 4\)"),
        (lambda: m(q, k, k, attn_mask=torch.zeros(L, S, dtype=torch.float64)),
         "attn_mask must be a bool tensor or of the query's dtype torch.float32, got torch.float64"),
        (lambda: m(q, k, k, is_causal=True), "pass the mask too"),
        (lambda: m(q, k, k, attn_mask=torch.zeros(L, S, dtype=torch.bool), is_causal=True),
         "attn_mask is not the causal mask"),
        (lambda: m(t(L, E), t(S, E), t(S, E), attn_mask=torch.zeros(B * HEADS, L, S, dtype=torch.bool)),
         r"attn_mask must have shape \(4, 5\) or \(2, 4, 5\)"),
    ]


@pytest.mark.parametrize("case", range(len(_errors())))
def test_bad_arguments_raise_clear_errors(case):
    make, match = _errors()[case]
    with pytest.raises(ValueError, match=match):
        make()


def test_the_causal_mask_is_recognised_in_both_forms():
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    assert seqmem.transformer.is_causal_mask(causal) and seqmem.transformer.is_causal_mask(causal.isinf())
    assert seqmem.transformer.is_causal_mask(causal.expand(3, 5, 5))
    assert not seqmem.transformer.is_causal_mask(causal.T)
    assert not seqmem.transformer.is_causal_mask(causal + 1.0)  # finite entries must be 0
    assert not seqmem.transformer.is_causal_mask(torch.zeros(5, 5, dtype=torch.bool))
