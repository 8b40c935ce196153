"""Homework 2's grading pipeline, end to end (as tests/test_grading.py for homework 1): canned
submissions and the adversarial corpus autograded in one batch by nbgrader with a real gradebook.
The checks themselves, called directly, are in tests/test_grading_checks.py."""
import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import automatic_homework

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw2-lstm-gru"

RIGHT = {
    "lstm_backward": '''
def lstm_backward(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next):
    H = h.shape[1]
    z = torch.addmm(b_ih, x, W_ih.t()) + torch.addmm(b_hh, h, W_hh.t())
    i, f, o = (torch.sigmoid(z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    g = torch.tanh(z[:, 2 * H:3 * H])
    c_next = f * c + i * g
    dc = dc_next + dh_next * o * (1 - torch.tanh(c_next) ** 2)
    dz = torch.cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                    dh_next * torch.tanh(c_next) * o * (1 - o)], 1)
    return dict(x=dz @ W_ih, h=dz @ W_hh, c=dc * f, W_ih=dz.t() @ x, W_hh=dz.t() @ h,
                b_ih=dz.sum(0), b_hh=dz.sum(0))
''',
    "mgu_cell_forward": '''
def mgu_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    W_if, W_in = W_ih.chunk(2)
    W_hf, W_hn = W_hh.chunk(2)
    b_if, b_in = b_ih.chunk(2)
    b_hf, b_hn = b_hh.chunk(2)
    f = torch.sigmoid(x @ W_if.T + b_if + h @ W_hf.T + b_hf)
    return (1 - f) * h + f * torch.tanh(x @ W_in.T + b_in + (f * h) @ W_hn.T + b_hn)
''',
    "counting_cell": '''
def counting_cell():
    W = torch.tensor([[0.0, 30, 0], [0, 40, 0], [1, 0, 0], [0, 0, 9000]])
    b = torch.tensor([-15.0, 0, 0, -9000])
    return W, b, torch.tensor([0.0, 0, 40])
''',
    "ctc_log_beta": '''
def ctc_log_beta(log_probs, target):
    T, S = log_probs.shape[0], len(target)
    ext = [0]
    for label in target.tolist():
        ext += [label, 0]
    beta = [[-math.inf] * (2 * S + 1) for _ in range(T)]
    beta[T - 1][2 * S] = float(log_probs[T - 1, 0])
    beta[T - 1][2 * S - 1] = float(log_probs[T - 1, ext[2 * S - 1]])
    for t in range(T - 2, -1, -1):
        for s in range(2 * S + 1):
            terms = [beta[t + 1][s]] + ([beta[t + 1][s + 1]] if s + 1 <= 2 * S else [])
            if s + 2 <= 2 * S and ext[s] != 0 and ext[s] != ext[s + 2]:
                terms.append(beta[t + 1][s + 2])
            top = max(terms)
            beta[t][s] = -math.inf if top == -math.inf else top + math.log(sum(math.exp(v - top) for v in terms)) \\
                + float(log_probs[t, ext[s]])
    return torch.tensor(beta, dtype=log_probs.dtype)
''',
}
WRONG_CTC = RIGHT["ctc_log_beta"].replace("and ext[s] != ext[s + 2]", "")  # skips between equal labels
CALLS_LIBRARY = {
    "lstm_backward": '''
def lstm_backward(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next):
    leaves = [t.clone().requires_grad_() for t in (x, h, c, W_ih, W_hh, b_ih, b_hh)]
    h_next, c_next = torch.lstm_cell(leaves[0], (leaves[1], leaves[2]), *leaves[3:])
    grads = torch.autograd.grad((h_next * dh_next).sum() + (c_next * dc_next).sum(), leaves)
    return dict(zip(("x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh"), grads))
''',
    "mgu_cell_forward": '''
def mgu_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    tied = lambda w: torch.cat([w[:len(w) // 2], -w[:len(w) // 2], w[len(w) // 2:]])
    params = {"weight_ih": tied(W_ih), "weight_hh": tied(W_hh), "bias_ih": tied(b_ih), "bias_hh": tied(b_hh)}
    return seqmem.gru.gru_step(params, h, x, reset_after=False)[0]
''',
}
FLOAT64_ONLY = RIGHT["ctc_log_beta"].replace("dtype=log_probs.dtype", "dtype=torch.float64")

SUBMISSIONS = {
    "source": ("source", {"test_lstm_backward": 3, "test_mgu_cell_forward": 2, "test_counting_cell": 2,
                          "test_ctc_log_beta": 3}),
    "canned_right": (RIGHT, {"test_lstm_backward": 3, "test_mgu_cell_forward": 2, "test_counting_cell": 2,
                             "test_ctc_log_beta": 3}),
    "partial": ({**RIGHT, "ctc_log_beta": WRONG_CTC},
                {"test_lstm_backward": 3, "test_mgu_cell_forward": 2, "test_counting_cell": 2, "test_ctc_log_beta": 0}),
    "calls_library": ({**RIGHT, **CALLS_LIBRARY},
                      {"test_lstm_backward": 0, "test_mgu_cell_forward": 0, "test_counting_cell": 2,
                       "test_ctc_log_beta": 3}),
    "visible_only": ({**RIGHT, "ctc_log_beta": FLOAT64_ONLY},
                     {"test_lstm_backward": 3, "test_mgu_cell_forward": 2, "test_counting_cell": 2,
                      "test_ctc_log_beta": 0}),
}


globals().update(automatic_homework(HW, SUBMISSIONS, {"partial": 7.0, "honest": 10.0, "blank": 0.0}))
