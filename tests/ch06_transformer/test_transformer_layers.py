"""seqmem's Transformer layers, stacks and model (chapter 6) are drop-ins for torch's.

Pinned here, with torch's weights loaded: outputs and the gradients of the inputs and of every
parameter equal torch's in float64, in eval mode (dropout 0.1 switched off), for the encoder
layer, the decoder layer, both stacks and the whole Transformer, post-norm and pre-norm, ReLU and
GELU, time first and batch first, no bias, without masks and with causal and padding masks (bool
and float); the same initialisation as torch's; unbatched inputs; torch's inference fast path;
errors.
"""
import itertools
import warnings

import pytest
import torch

import seqmem
from helpers import gen, randn

D, HEADS, FF, B, S, T = 8, 2, 16, 3, 5, 4
CONFIGS = {f"{'pre' if nf else 'post'}-{act}-{'bf' if bf else 'tf'}": dict(norm_first=nf, activation=act, batch_first=bf)
           for nf, act, bf in itertools.product([False, True], ["relu", "gelu"], [False, True])}
CONFIGS["no-bias"] = dict(bias=False, norm_first=True)
COMMON = dict(dim_feedforward=FF, dropout=0.1)


def _masks(kind, dev):
    """(src mask and padding, tgt mask and padding, memory mask and padding), as keyword arguments."""
    if kind == "none":
        return {}, {}, {}
    pad_s = torch.zeros(B, S, dtype=torch.bool, device=dev)
    pad_s[1, 3:] = pad_s[2, 4] = True  # padding at the end; key 0 always real
    pad_t = torch.zeros(B, T, dtype=torch.bool, device=dev)
    pad_t[2, 3:] = True
    causal = seqmem.Transformer.generate_square_subsequent_mask(T, device=dev, dtype=torch.float64)
    if kind == "causal-float":
        as_float = lambda m: torch.zeros(m.shape, dtype=torch.float64, device=dev).masked_fill(m, float("-inf"))
        return (dict(src_key_padding_mask=as_float(pad_s)), dict(tgt_mask=causal, tgt_key_padding_mask=as_float(pad_t)),
                dict(memory_key_padding_mask=as_float(pad_s)))
    drop = torch.rand(T, S, generator=gen(5)).to(dev) < 0.3
    drop[:, 0] = False
    src_causal = torch.ones(S, S, dtype=torch.bool, device=dev).triu(1)
    return (dict(src_mask=src_causal, src_key_padding_mask=pad_s),  # bool, the hint left to detection
            dict(tgt_mask=causal.isinf(), tgt_key_padding_mask=pad_t, tgt_is_causal=True),
            dict(memory_mask=drop, memory_key_padding_mask=pad_s))


MASKS = ["none", "causal-float", "causal-bool"]


def _build(part, make, cfg, **factory):
    layer = dict(**COMMON, **cfg, **factory)
    if part == "encoder-layer":
        return make.TransformerEncoderLayer(D, HEADS, **layer)
    if part == "decoder-layer":
        return make.TransformerDecoderLayer(D, HEADS, **layer)
    norm = torch.nn.LayerNorm(D, bias=cfg.get("bias", True), **factory)
    if part == "encoder":
        return make.TransformerEncoder(make.TransformerEncoderLayer(D, HEADS, **layer), 2, norm)
    if part == "decoder":
        return make.TransformerDecoder(make.TransformerDecoderLayer(D, HEADS, **layer), 2, norm)
    return make.Transformer(D, HEADS, 2, 2, **layer)


def _call(part, module, src, tgt, masks):
    src_m, tgt_m, mem_m = masks
    if part == "encoder-layer":
        return module(src, **src_m)
    if part == "encoder":
        rename = dict(src_mask="mask")
        return module(src, **{rename.get(k, k): v for k, v in src_m.items()})
    if part in ("decoder-layer", "decoder"):
        return module(tgt, src, **tgt_m, **mem_m)  # src plays the memory
    src_m = {k: v for k, v in src_m.items() if k != "src_mask"}  # the encoder of a seq2seq model sees all
    return module(src, tgt, **src_m, **tgt_m, **mem_m)


def _run(part, module, inputs, masks):
    src, tgt = (t.detach().clone().requires_grad_() for t in inputs)
    module.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on nested tensors and mask types
        out = _call(part, module, src, tgt, masks)
    (out * torch.randn(out.shape, generator=gen(2), dtype=out.dtype).to(out.device)).sum().backward()
    grads = [src.grad, tgt.grad] if part in ("decoder-layer", "decoder", "transformer") else [src.grad]
    return [out, *grads, *(p.grad for p in module.parameters())]


def _pair(part, cfg, dev):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        ref = _build(part, torch.nn, cfg).to(dev, torch.float64).eval()
    ours = _build(part, seqmem, cfg).to(dev, torch.float64).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _inputs(cfg, dev, batched=True):
    g = gen(1)
    if not batched:
        return randn(g, S, D, dev=dev), randn(g, T, D, dev=dev)
    if cfg.get("batch_first"):
        return randn(g, B, S, D, dev=dev), randn(g, B, T, D, dev=dev)
    return randn(g, S, B, D, dev=dev), randn(g, T, B, D, dev=dev)


PARTS = ["encoder-layer", "decoder-layer", "encoder", "decoder", "transformer"]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("part", PARTS)
def test_equals_torch_outputs_and_gradients(part, config, mask, dev):
    cfg = CONFIGS[config]
    ref, ours = _pair(part, cfg, dev)
    inputs, masks = _inputs(cfg, dev), _masks(mask, dev)
    got, expected = _run(part, ours, inputs, masks), _run(part, ref, inputs, masks)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("part", PARTS)
def test_unbatched_inputs_equal_torch(part):
    ref, ours = _pair(part, CONFIGS["post-relu-tf"], "cpu")
    inputs = _inputs({}, "cpu", batched=False)
    causal = seqmem.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    masks = ({}, dict(tgt_mask=causal), dict(memory_key_padding_mask=torch.tensor([False] * 4 + [True])))
    for a, b in zip(_run(part, ours, inputs, masks), _run(part, ref, inputs, masks)):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_initialisation_is_torchs():
    """Built under the same seed, the Transformer draws torch's weights (Xavier-uniform matrices)."""
    for cfg in (CONFIGS["post-relu-tf"], CONFIGS["no-bias"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(3)
            ref = torch.nn.Transformer(D, HEADS, 2, 2, FF, **cfg)
        torch.manual_seed(3)
        ours = seqmem.Transformer(D, HEADS, 2, 2, FF, **cfg)
        for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, msg=name)


def test_layers_use_the_librarys_attention_and_eval_switches_dropout_off():
    model = seqmem.Transformer(D, HEADS, 1, 1, FF, dropout=0.5, batch_first=True).double()
    assert isinstance(model.decoder.layers[0].multihead_attn, seqmem.MultiheadAttention)
    src, tgt = (t.detach() for t in _inputs(dict(batch_first=True), "cpu"))
    model.train()
    assert not torch.allclose(model(src, tgt), model(src, tgt))  # two dropout draws
    model.eval()
    torch.testing.assert_close(model(src, tgt), model(src, tgt))


def test_encoder_agrees_with_torchs_inference_fast_path():
    """Under no_grad in eval mode torch runs its fused encoder (nested tensors with padding: zeros at
    the padded positions); ours agrees at every real position."""
    ref, ours = _pair("encoder", dict(batch_first=True), "cpu")
    src = _inputs(dict(batch_first=True), "cpu")[0].detach()
    pad = _masks("causal-bool", "cpu")[0]["src_key_padding_mask"]
    with torch.no_grad():
        expected, got = ref(src, src_key_padding_mask=pad), ours(src, src_key_padding_mask=pad)
    torch.testing.assert_close(got[~pad], expected[~pad])


def test_bad_inputs_raise_clear_errors():
    model = seqmem.Transformer(D, HEADS, 1, 1, FF)
    enc = seqmem.TransformerEncoderLayer(D, HEADS, FF, batch_first=True)
    dec = seqmem.TransformerDecoderLayer(D, HEADS, FF)
    cases = [
        (lambda: model(torch.randn(S, B, D + 1), torch.randn(T, B, D)),
         r"src must have shape \(S, B, d_model\) or unbatched \(S, d_model\) with d_model = 8, got \(5, 3, 9\)"),
        (lambda: model(torch.randn(S, B, D), torch.randn(T, B + 1, D)), "src and tgt must both be batched with one"),
        (lambda: model(torch.randn(S, B, D), torch.randn(T, D)), "src and tgt must both be batched"),
        (lambda: enc(torch.randn(B, S)), r"src must have shape \(B, S, d_model\)"),
        (lambda: dec(torch.randn(T, B, D), torch.randn(S, B + 1, D)), "memory and tgt must both be batched"),
        (lambda: dec(torch.randn(T, B, D), torch.randn(S, B, 3)), r"memory must have shape \(S, B, d_model\)"),
        (lambda: dec(torch.randn(T, B, D), torch.randn(S, B, D), tgt_mask=torch.zeros(T, T, dtype=torch.bool),
                     tgt_is_causal=True), "attn_mask is not the causal mask"),
        (lambda: seqmem.TransformerEncoderLayer(D, HEADS, activation="tanh"), "activation must be 'relu', 'gelu'"),
        (lambda: seqmem.TransformerEncoderLayer(D, 3), "embed_dim must be a multiple of num_heads"),
        (lambda: seqmem.TransformerEncoder(enc, 0), "num_layers must be a positive int"),
        (lambda: seqmem.Transformer.generate_square_subsequent_mask(0), "sz must be a positive int"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()


def test_generate_square_subsequent_mask_is_torchs(dev):
    for dtype in (None, torch.float64):
        got = seqmem.Transformer.generate_square_subsequent_mask(6, device=dev, dtype=dtype)
        expected = torch.nn.Transformer.generate_square_subsequent_mask(6, device=dev, dtype=dtype)
        assert got.dtype == expected.dtype and got.device.type == dev.type
        assert torch.equal(got, expected)


def test_the_stacks_detect_a_causal_mask_when_not_told():
    """is_causal=None (the stacks' default) becomes True for the causal mask only: the fused kernel's hint."""
    from seqmem.transformer import _causal_hint

    causal = seqmem.Transformer.generate_square_subsequent_mask(4)
    assert _causal_hint(causal, None) and _causal_hint(causal.isinf(), None)
    assert not _causal_hint(causal.T, None) and not _causal_hint(None, None)
    assert not _causal_hint(causal, False)
    assert not _causal_hint(torch.zeros(4, 4, dtype=torch.long), None)  # left for the attention to refuse
