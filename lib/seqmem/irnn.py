r"""Remedies for vanishing and exploding gradients that change the plain RNN (chapter 2).

BPTT multiplies the error signal by the Jacobian ∂h_t/∂h_{t-1} = diag(σ'(z_t)) W_hh at every step
back (``seqmem.bptt``); over many steps the product shrinks to nothing or blows up. Gradient
clipping caps the step (``fit(clip_grad_norm=...)``); the remedies here change the network so that
the Jacobian starts out close to the identity:

- ``irnn_init_``: the IRNN of Le et al. (2015). ReLU units, W_hh = I and zero biases, so that
  h_t = ReLU(h_{t-1} + W_xh x_t): without input a unit keeps its value for ever, and where units
  are active the Jacobian is exactly I.
- ``SkipRNNCell`` and ``SkipRNN``: a residual (skip) connection through time, in the notation of
  the lecture, r^t = a(U x^t + V s^{t-1} + b), s^t = s^{t-1} + r^t. The Jacobian is
  I + diag(a'(·)) V: the identity plus a correction, however small a' gets.
- ``LastStep`` reads a many-to-one answer (the adding problem's sum) off the last output, and
  ``adding_model`` builds the networks the chapter compares, by name.
- ``train_adding`` is one seeded run on the adding problem with a held-out MSE curve: the
  chapter's experiment script and its notebook both call it.

Gating (LSTM, GRU; chapter 3) is the remedy that learns when to keep and when to overwrite.

Dimensions: B batch, T time, I input size, H hidden size, O output size.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .core import History, fit, unroll
from .rnn import RNN
from .tasks import adding_problem

__all__ = ["irnn_init_", "SkipRNNCell", "SkipRNN", "LastStep", "adding_model", "train_adding",
           "ADDING_MODELS", "OPTIMIZERS"]

#: The networks ``adding_model`` builds: the plain tanh RNN and its remedies.
ADDING_MODELS = ("tanh", "irnn", "skip", "skip-relu")
#: The optimisers ``train_adding`` knows by name.
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


def irnn_init_(rnn: nn.Module, input_std: float = 1e-3, scale: float = 1.0) -> nn.Module:
    """Initialise a ReLU RNN as an IRNN (Le et al. 2015), in place, and return it.

    Every recurrent matrix W_hh becomes ``scale`` times the identity, every bias zero, and every
    input matrix W_xh is drawn from N(0, input_std^2) (the paper's 0.001). Works on any module
    whose parameters carry torch's names (``torch.nn.RNN``, ``seqmem.RNN``, ``torch.nn.RNNCell``,
    ``seqmem.RNNCell``: ``weight_hh*`` (H, H), ``weight_ih*`` (H, I), ``bias_*`` (H,)).
    """
    if getattr(rnn, "nonlinearity", None) != "relu":
        raise ValueError("an IRNN is a ReLU RNN: build the module with nonlinearity='relu', got "
                         f"{getattr(rnn, 'nonlinearity', type(rnn).__name__)!r}")
    named = dict(rnn.named_parameters())
    if not any(name.startswith("weight_hh") for name in named):
        raise TypeError(f"irnn_init_ expects a module with weight_hh parameters, got {type(rnn).__name__}")
    with torch.no_grad():
        for name, p in named.items():
            if name.startswith("weight_hh"):
                p.copy_(scale * torch.eye(p.shape[0], dtype=p.dtype, device=p.device))  # W_hh = I
            elif name.startswith("weight_ih"):
                p.normal_(0.0, input_std)
            elif name.startswith("bias"):
                p.zero_()
    return rnn


_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class SkipRNNCell(nn.Module):
    """The lecture's residual RNN as one f: r = a(U x + V s + b), s' = s + r; ``s', y = cell(s, x)``.

    ``weight_ih`` is U (H, I), ``weight_hh`` is V (H, H), ``bias`` is b (H,). U and b start as in
    torch's RNN, U(-1/sqrt(H), 1/sqrt(H)); V starts ``recurrent_scale`` times smaller, so that the
    Jacobian ∂s'/∂s = I + diag(a') V starts near the identity. With a = ReLU every increment r is
    nonnegative: the state accumulates and never decreases.

    Shape:
        s: (B, H); x: (B, I); returns (s', y) with y = s', both (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 recurrent_scale: float = 0.1, device=None, dtype=None):
        super().__init__()
        if nonlinearity not in _ACTIVATIONS:
            raise ValueError(f"nonlinearity must be one of {sorted(_ACTIVATIONS)}, got {nonlinearity!r}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))  # U
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))  # V
        self.bias = nn.Parameter(torch.empty(hidden_size, **kw))  # b
        bound = 1.0 / math.sqrt(hidden_size)
        for p in (self.weight_ih, self.bias):
            nn.init.uniform_(p, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound * recurrent_scale, bound * recurrent_scale)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The zero state (B, H), on the device and dtype of the parameters."""
        return self.weight_hh.new_zeros(batch_size, self.hidden_size)

    def forward(self, s: torch.Tensor, x: torch.Tensor):
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (B, {self.input_size}), got {tuple(x.shape)}")
        if tuple(s.shape) != (x.shape[0], self.hidden_size):
            raise ValueError(f"s must have shape ({x.shape[0]}, {self.hidden_size}), got {tuple(s.shape)}")
        z = x @ self.weight_ih.T + s @ self.weight_hh.T + self.bias  # (B, H): U x^t + V s^{t-1} + b
        s_next = s + _ACTIVATIONS[self.nonlinearity](z)  # s^t = s^{t-1} + r^t
        return s_next, s_next

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"


class SkipRNN(nn.Module):
    """One layer of ``SkipRNNCell`` over a sequence, with ``torch.nn.RNN``'s calling convention.

    Shape:
        input: (T, B, I), or (B, T, I) with ``batch_first``; hx: (1, B, H) or None (zeros).
        returns output (T, B, H) (batch first if asked) and h_n (1, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 batch_first: bool = False, recurrent_scale: float = 0.1, device=None, dtype=None):
        super().__init__()
        self.cell = SkipRNNCell(input_size, hidden_size, nonlinearity, recurrent_scale, device, dtype)
        self.hidden_size, self.batch_first = hidden_size, batch_first

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None):
        if not isinstance(input, torch.Tensor) or input.dim() != 3:
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(f"input must have shape {'(B, T, I)' if self.batch_first else '(T, B, I)'}, got {got}")
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        s0 = None if hx is None else hx[0]  # (B, H)
        output, s_n = unroll(self.cell, x, s0)  # (T, B, H), (B, H)
        if self.batch_first:
            output = output.transpose(0, 1)  # (B, T, H)
        return output, s_n.unsqueeze(0)  # h_n: (1, B, H)


class LastStep(nn.Module):
    """A many-to-one model: a batch-first sequence layer, then a linear read-out of its last output.

    Shape:
        x: (B, T, I) -> (B, O).
    """

    def __init__(self, rnn: nn.Module, hidden_size: int, out_features: int = 1):
        super().__init__()
        if not getattr(rnn, "batch_first", False):
            raise ValueError("LastStep reads (B, T, I) batches: build the sequence layer with batch_first=True")
        self.rnn, self.head = rnn, nn.Linear(hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(x)  # (B, T, H)
        return self.head(output[:, -1])  # (B, O): the answer after the last step


def adding_model(kind: str, hidden_size: int = 64, input_size: int = 2) -> LastStep:
    """One of the chapter's networks for the adding problem, by name (see ``ADDING_MODELS``).

    ``"tanh"``: ``seqmem.RNN`` with torch's initialisation; ``"irnn"``: a ReLU ``seqmem.RNN``
    through ``irnn_init_``; ``"skip"``: a tanh ``SkipRNN``; ``"skip-relu"``: a ReLU ``SkipRNN``,
    whose increments r^t >= 0 make its state an accumulator that never decreases. Each reads its
    answer off the last step.
    """
    if kind == "tanh":
        rnn = RNN(input_size, hidden_size, batch_first=True)
    elif kind == "irnn":
        rnn = irnn_init_(RNN(input_size, hidden_size, nonlinearity="relu", batch_first=True))
    elif kind in ("skip", "skip-relu"):
        rnn = SkipRNN(input_size, hidden_size, "relu" if kind == "skip-relu" else "tanh", batch_first=True)
    else:
        raise ValueError(f"kind must be one of {ADDING_MODELS}, got {kind!r}")
    return LastStep(rnn, hidden_size)


def _mse_loss(model, x, y):
    return F.mse_loss(model(x), y)


def train_adding(kind: str, T: int, steps: int, *, hidden_size: int = 64, batch_size: int = 32,
                 optimizer: str = "adam", lr: float = 1e-3, clip_grad_norm: float | None = 1.0,
                 seed: int = 0, eval_every: int = 100, eval_size: int = 1000, device=None,
                 progress: bool = False):
    """Train ``adding_model(kind)`` on fresh adding problems of length T; return (model, History).

    ``seed`` fixes the weights (drawn after ``torch.manual_seed(seed)``) and the training batches;
    the held-out set of ``eval_size`` sequences comes from seed 10_000 + seed, apart from them.
    The history's ``loss`` is the training MSE of every step, its ``evals`` the held-out MSE every
    ``eval_every`` steps. Answering 1 always scores 1/6 on either.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    torch.manual_seed(seed)
    model = adding_model(kind, hidden_size).to(device)
    train = torch.Generator().manual_seed(seed)
    x_test, y_test = adding_problem(eval_size, T, torch.Generator().manual_seed(10_000 + seed), device)
    history = fit(model, lambda step: adding_problem(batch_size, T, train, device), _mse_loss,
                  steps=steps, optimizer=OPTIMIZERS[optimizer](model.parameters(), lr=lr),
                  clip_grad_norm=clip_grad_norm, eval_every=eval_every, progress=progress,
                  evaluate=lambda: F.mse_loss(model(x_test), y_test))
    return model, history
