"""Homework 5's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks_hw5.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw5-transformer"

RIGHT = {  # right answers written differently from the source's
    "positional_encoding": '''
def positional_encoding(positions, d_model):
    table = torch.zeros(len(positions), d_model, dtype=torch.float64)
    for i in range(0, d_model, 2):
        angle = positions.double() / 10000 ** (i / d_model)
        table[:, i] = torch.sin(angle)
        if i + 1 < d_model:
            table[:, i + 1] = torch.cos(angle)
    return table.to(positions.dtype)
''',
    "split_heads": '''
def split_heads(x, num_heads):
    return x.view(*x.shape[:2], num_heads, -1).transpose(1, 2)


def merge_heads(heads):
    return torch.cat(heads.unbind(1), dim=-1)
''',
    "multi_head_attention": '''
def multi_head_attention(query, key, value, params, num_heads, key_padding_mask, causal):
    E = query.shape[-1]
    d = E // num_heads
    proj = [t @ params["in_proj_weight"][i * E:(i + 1) * E].T + params["in_proj_bias"][i * E:(i + 1) * E]
            for i, t in enumerate((query, key, value))]
    q, k, v = (split_heads(t, num_heads) for t in proj)
    allowed = torch.ones(query.shape[0], 1, query.shape[1], key.shape[1], dtype=torch.bool)
    if key_padding_mask is not None:
        allowed = allowed & ~key_padding_mask[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(query.shape[1], key.shape[1], dtype=torch.bool).tril()
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) / d ** 0.5
    top = torch.where(allowed, scores, torch.finfo(scores.dtype).min).amax(-1, keepdim=True)
    e = torch.where(allowed, torch.exp(scores - top), 0.0)
    weights = e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
    out = merge_heads(weights @ v) @ params["out_proj.weight"].T + params["out_proj.bias"]
    return out, weights
''',
    "masked_self_attention_block": '''
def masked_self_attention_block(x, params, num_heads, key_padding_mask, norm_first):
    p = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("self_attn")}

    def layer_norm(z):
        mean = z.mean(-1, keepdim=True)
        var = ((z - mean) ** 2).mean(-1, keepdim=True)
        return (z - mean) / torch.sqrt(var + 1e-5) * params["norm1.weight"] + params["norm1.bias"]
    if norm_first:
        z = layer_norm(x)
        return x + multi_head_attention(z, z, z, p, num_heads, key_padding_mask, True)[0]
    return layer_norm(x + multi_head_attention(x, x, x, p, num_heads, key_padding_mask, True)[0])
''',
}
WRONG_BLOCK = '''
def masked_self_attention_block(x, params, num_heads, key_padding_mask, norm_first):
    p = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("self_attn")}
    norm = lambda z: torch.nn.functional.layer_norm(z, z.shape[-1:], params["norm1.weight"], params["norm1.bias"])
    return norm(x + multi_head_attention(x, x, x, p, num_heads, key_padding_mask, True)[0])  # post-norm always
'''
CALLS_LIBRARY = {
    "positional_encoding": '''
def positional_encoding(positions, d_model):
    table = seqmem.sinusoidal_encoding(int(positions.max()) + 1, d_model, dtype=torch.float64)
    return table[positions.long()].to(positions.dtype)
''',
    "multi_head_attention": '''
def multi_head_attention(query, key, value, params, num_heads, key_padding_mask, causal):
    mha = torch.nn.MultiheadAttention(query.shape[-1], num_heads, batch_first=True, dtype=query.dtype)
    mha.load_state_dict(params)
    T, S = query.shape[1], key.shape[1]
    mask = torch.ones(T, S, dtype=torch.bool).triu(1) if causal else None
    out, w = mha(query, key, value, key_padding_mask=key_padding_mask, attn_mask=mask, average_attn_weights=False)
    return out.detach().nan_to_num(0.0), w.detach().nan_to_num(0.0)
''',
}
# Angles in float32: right on the visible tests' short tables, wrong on the hidden long ones
VISIBLE_ONLY = '''
def positional_encoding(positions, d_model):
    t = positions.float()[:, None]
    columns = torch.arange(d_model)
    angle = t / 10000 ** (2 * (columns // 2) / d_model)  # float32 angles: right on short tables only
    return torch.where(columns % 2 == 0, torch.sin(angle), torch.cos(angle)).to(positions.dtype)
'''
FULL = {"test_positional_encoding": 2, "test_split_heads": 2, "test_multi_head_attention": 3,
        "test_masked_self_attention_block": 3}

SUBMISSIONS = {
    "source": ("source", FULL),
    "canned_right": (RIGHT, FULL),
    "partial": ({**RIGHT, "masked_self_attention_block": WRONG_BLOCK}, {**FULL, "test_masked_self_attention_block": 0}),
    # the block calls the student's own multi_head_attention, which calls torch's: blocked there too
    "calls_library": ({**RIGHT, **CALLS_LIBRARY}, {**FULL, "test_positional_encoding": 0,
                                                  "test_multi_head_attention": 0,
                                                  "test_masked_self_attention_block": 0}),
    "visible_only": ({**RIGHT, "positional_encoding": VISIBLE_ONLY}, {**FULL, "test_positional_encoding": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 7.0, "honest": 10.0, "blank": 0.0}))
