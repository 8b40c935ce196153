r"""Remedies for vanishing and exploding gradients that change the plain RNN (chapter 2).

BPTT multiplies the error signal by the Jacobian ∂h_t/∂h_{t-1} = diag(σ'(z_t)) W_hh at every step
back (``seqmem.bptt``); over many steps the product shrinks to nothing or blows up. Gradient
clipping caps the step (``fit(clip_grad_norm=...)``); the remedies here change the network so that
the Jacobian starts out close to the identity:

- ``irnn_init_``: the IRNN of Le et al. (2015). ReLU units, W_hh = I and zero biases, so that
  h_t = ReLU(h_{t-1} + W_xh x_t): without input a unit keeps its value for ever, and where units
  are active the Jacobian is exactly I.
- ``skip_rnn_step`` and ``SkipRNNCell``: a residual (skip) connection through time, in the
  notation of the lecture, r^t = a(U x^t + V s^{t-1} + b), s^t = s^{t-1} + r^t. The Jacobian is
  I + diag(a'(·)) V: the identity plus a correction, however small a' gets. As a layer, the cell
  runs in ``seqmem.Stacked``, as any cell does.
- ``adding_model`` builds the networks the chapter compares, by name, each read out after the
  last step (``seqmem.heads.LastStep``); ``train_adding`` is one seeded run on the adding problem
  with a held-out MSE curve: the chapter's experiment script and its notebook both call it.

Gating (LSTM, GRU; chapter 3) is the remedy that learns when to keep and when to overwrite.

Dimensions: B batch, T time, I input size, H hidden size, O output size.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .cell import Cell, activation
from .core import fit
from .heads import LastStep
from .layers import Stacked
from .rnn import RNN
from .tasks import adding_problem

__all__ = ["irnn_init_", "skip_rnn_step", "SkipRNNCell", "adding_model", "train_adding", "ADDING_MODELS",
           "OPTIMIZERS"]

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


#: The increments' activations a a skip RNN accepts (names of ``seqmem.cell.ACTIVATIONS``).
SKIP_NONLINEARITIES = ("tanh", "relu")


def skip_rnn_step(params: dict, s: torch.Tensor, x: torch.Tensor, nonlinearity: str = "tanh"):
    """One step of the residual RNN: r = a(U x + V s + b), s' = s + r. ``params``: ``weight_ih`` U
    (H, I), ``weight_hh`` V (H, H), ``bias`` b (H,); s (B, H), x (B, I). Returns (s', s')."""
    z = x @ params["weight_ih"].T + s @ params["weight_hh"].T + params["bias"]  # (B, H): U x^t + V s^{t-1} + b
    s_next = s + activation(nonlinearity, SKIP_NONLINEARITIES)(z)  # s^t = s^{t-1} + r^t
    return s_next, s_next


class SkipRNNCell(Cell):
    """The lecture's residual RNN as one f: r = a(U x + V s + b), s' = s + r; ``s', y = cell(s, x)``.

    ``weight_ih`` is U (H, I), ``weight_hh`` is V (H, H), ``bias`` is b (H,). U and b start as in
    torch's RNN, U(-1/sqrt(H), 1/sqrt(H)); V starts ``recurrent_scale`` times smaller, so that the
    Jacobian ∂s'/∂s = I + diag(a') V starts near the identity. With a = ReLU every increment r is
    nonnegative: the state accumulates and never decreases.

    Shape:
        s: (B, H); x: (B, I); returns (s', y) with y = s', both (B, H).
    """

    state_name = "s"

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 recurrent_scale: float = 0.1, device=None, dtype=None):
        activation(nonlinearity, SKIP_NONLINEARITIES)
        self.recurrent_scale = recurrent_scale  # read by reset_parameters, which Cell's __init__ calls
        H = hidden_size
        super().__init__(input_size, hidden_size, {"weight_ih": (H, input_size), "weight_hh": (H, H), "bias": (H,)},
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.weight_ih, self.bias):
            nn.init.uniform_(p, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound * self.recurrent_scale, bound * self.recurrent_scale)

    def step(self, params, s, x):
        return skip_rnn_step(params, s, x, self.nonlinearity)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"


def adding_model(kind: str, hidden_size: int = 64, input_size: int = 2) -> LastStep:
    """One of the chapter's networks for the adding problem, by name (see ``ADDING_MODELS``).

    ``"tanh"``: ``seqmem.RNN`` with torch's initialisation; ``"irnn"``: a ReLU ``seqmem.RNN``
    through ``irnn_init_``; ``"skip"``: a tanh ``SkipRNNCell`` (in ``seqmem.Stacked``);
    ``"skip-relu"``: a ReLU one, whose increments r^t >= 0 make its state an accumulator that
    never decreases. Each reads its answer off the last step: ``model(x)`` gives ``(y, state)``
    with y (B, 1).
    """
    if kind == "tanh":
        rnn = RNN(input_size, hidden_size, batch_first=True)
    elif kind == "irnn":
        rnn = irnn_init_(RNN(input_size, hidden_size, nonlinearity="relu", batch_first=True))
    elif kind in ("skip", "skip-relu"):
        a = "relu" if kind == "skip-relu" else "tanh"
        rnn = Stacked(lambda i, h: SkipRNNCell(i, h, a), input_size, hidden_size)
    else:
        raise ValueError(f"kind must be one of {ADDING_MODELS}, got {kind!r}")
    return LastStep(rnn, 1)


def _mse_loss(model, batch):
    x, y = batch
    return F.mse_loss(model(x)[0], y)


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
                  evaluate=lambda: F.mse_loss(model(x_test)[0], y_test))
    return model, history
