"""Homework 3's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks_hw3.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw3-seq2seq"

RIGHT = {  # right answers written differently from the source's
    "sequence_nll": '''
def sequence_nll(logits, targets, lengths, epsilon):
    B, T, V = logits.shape
    out = []
    for b in range(B):
        log_p = torch.log_softmax(logits[b, :int(lengths[b])], dim=1)
        picked = log_p[torch.arange(int(lengths[b])), targets[b, :int(lengths[b])]]
        out.append(-((1 - epsilon) * picked + epsilon * log_p.sum(1) / V).sum())
    return torch.stack(out)
''',
    "sample_decode": '''
def sample_decode(params, h0, uniforms, temperature):
    B, max_len = uniforms.shape
    rows = []
    for b in range(B):
        h, y, row = h0[b], BOS, []
        for t in range(max_len):
            h = torch.tanh(params["W_ih"] @ params["embedding"][y] + params["W_hh"] @ h + params["b"])
            p = torch.softmax((params["W_out"] @ h + params["b_out"]) / temperature, 0)
            y = min(int((torch.cumsum(p, 0) <= uniforms[b, t]).sum()), len(p) - 1)
            row.append(y)
            if y == EOS:
                break
        rows.append(row + [PAD] * (max_len - len(row)))
    return torch.tensor(rows, dtype=torch.long).reshape(B, max_len)
''',
    "beam_step_gnmt": '''
def beam_step_gnmt(scores, log_probs, best_finished, length, k, alpha):
    B, K, V = log_probs.shape
    total = scores.unsqueeze(2) + log_probs
    lp = ((5 + length) / 6) ** alpha
    best = torch.maximum(best_finished, (total[:, :, EOS] / lp).max(dim=1).values)
    keep = torch.ones(V, dtype=torch.bool)
    keep[EOS] = False
    candidates = torch.where(keep, total, torch.tensor(-math.inf, dtype=total.dtype)).reshape(B, -1)
    live, index = candidates.sort(dim=1, descending=True)
    return live[:, :k], index[:, :k] // V, index[:, :k] % V, best
''',
    "clipped_precision": '''
def clipped_precision(hypotheses, references, n):
    matched, total = 0, 0
    for hyp, refs in zip(hypotheses, references):
        grams = Counter(zip(*(hyp[i:] for i in range(n))))
        best = Counter()
        for ref in refs:
            best = best | Counter(zip(*(ref[i:] for i in range(n))))
        matched += sum((grams & best).values())
        total += sum(grams.values())
    return matched, total
''',
}
WRONG_BEAM = RIGHT["beam_step_gnmt"].replace("keep[EOS] = False", "pass")  # <eos> takes a slot
CALLS_LIBRARY = {
    "sequence_nll": '''
def sequence_nll(logits, targets, lengths, epsilon):
    steps = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none", label_smoothing=epsilon)
    return (steps * (torch.arange(logits.shape[1]) < lengths[:, None])).sum(1)
''',
    "clipped_precision": '''
def clipped_precision(hypotheses, references, n):
    return seqmem.metrics.modified_precision(hypotheses, references, n)
''',
}
VISIBLE_ONLY = RIGHT["sample_decode"].replace("h0[b], BOS", "torch.zeros_like(h0[b]), BOS")  # ignores h0
FULL = {"test_sequence_nll": 2, "test_sample_decode": 3, "test_beam_step_gnmt": 3, "test_clipped_precision": 2}

SUBMISSIONS = {
    "source": ("source", FULL),
    "canned_right": (RIGHT, FULL),
    "partial": ({**RIGHT, "beam_step_gnmt": WRONG_BEAM}, {**FULL, "test_beam_step_gnmt": 0}),
    "calls_library": ({**RIGHT, **CALLS_LIBRARY}, {**FULL, "test_sequence_nll": 0, "test_clipped_precision": 0}),
    "visible_only": ({**RIGHT, "sample_decode": VISIBLE_ONLY}, {**FULL, "test_sample_decode": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 7.0, "honest": 10.0, "blank": 0.0}))
