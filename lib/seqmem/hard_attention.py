r"""Hard attention: a zero-one choice of where to look, learned with REINFORCE.

Soft attention reads the expectation sum_l pi(l) x_l of what it could look at, which is
differentiable in the weights pi. Hard attention (Xu et al., 2015's "stochastic" attention; Mnih
et al., 2014's glimpses) draws one place l ~ pi(. | h) and reads x_l alone. The draw has no
gradient, so the policy pi_theta is trained on the expected reward instead, with Williams's (1992)
REINFORCE estimator:

.. math::

    \nabla_\theta\, \mathbb{E}_{l \sim \pi_\theta}[R]
    = \sum_l R(l)\, \nabla_\theta \pi_\theta(l)
    = \mathbb{E}_{l \sim \pi_\theta}\big[R(l)\, \nabla_\theta \log \pi_\theta(l)\big]
    = \mathbb{E}_{l \sim \pi_\theta}\big[(R(l) - b)\, \nabla_\theta \log \pi_\theta(l)\big]

for any baseline b that does not depend on the draw l (E[grad log pi] = grad sum_l pi(l) = 0): the
baseline leaves the mean alone and, near E[R], shrinks the variance. In code the estimate is the
gradient of a *surrogate* loss, ``reinforce_surrogate``: -(R - b).detach() * log pi(l), the reward
and the baseline constants in it; the baseline itself is regressed to R (``baseline_loss``), with
R detached there too.

``GlimpseClassifier`` is Mnih et al.'s recurrent attention model in miniature, on scikit-learn's
8 x 8 digits: G glimpses of a p x p patch at one of the L places of a grid, a recurrent core
(a ``seqmem.GRUCell``) that reads each glimpse, a categorical policy over the L places from the
core's state, a learned baseline from the same state (detached: its loss never moves the core or
the policy), and a classifier after the last glimpse. The same model runs with three attentions:

- ``"hard"``: l_g ~ pi(. | h_{g-1}) while training (the most probable place when evaluating, or
  with ``sample=True``), pi learned by REINFORCE with the reward R = 1 for a right answer;
- ``"soft"``: the expected glimpse sum_l pi(l) [x_l; e_l], everything learned by backpropagation;
- ``"random"``: l_g uniform over the grid, the policy never used: what looking gains over not
  choosing.

Dimensions: B batch, P = p * p pixels of a patch, L places on the grid, G glimpses, H hidden size,
C classes.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .core import check_positive_int
from .gru import GRUCell

__all__ = ["reinforce_surrogate", "baseline_loss", "glimpse_patches", "glimpse_places", "GlimpseOutput",
           "GlimpseClassifier", "glimpse_loss", "ATTENTIONS"]

ATTENTIONS = ("hard", "soft", "random")


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


# -- the estimator ---------------------------------------------------------------------------------


def reinforce_surrogate(log_prob: torch.Tensor, reward: torch.Tensor, baseline=None) -> torch.Tensor:
    r"""A loss whose gradient is minus the REINFORCE estimate of grad E[R] (Williams, 1992).

    loss = -mean_b sum_g (R_b - b_bg) log pi(l_bg), with R and b detached: its gradient is
    -mean_b sum_g (R_b - b_bg) grad log pi(l_bg), so a descent step climbs the expected reward, and
    nothing flows into the reward (the classifier that earned it) or the baseline.

    Args:
        log_prob: (B,) log pi(l_b) of the drawn actions, or (B, G) for G draws per sample.
        reward: (B,) R_b, one reward per sample (shared by its G draws).
        baseline: ``None`` (b = 0), a number, or a tensor of ``log_prob``'s shape.

    Returns:
        a scalar.
    """
    if not isinstance(log_prob, torch.Tensor) or log_prob.dim() not in (1, 2):
        raise ValueError(f"log_prob must have shape (B,) or (B, G), got {_shape(log_prob)}")
    if not isinstance(reward, torch.Tensor) or tuple(reward.shape) != tuple(log_prob.shape[:1]):
        raise ValueError(f"reward must have shape (B,) = {tuple(log_prob.shape[:1])}, got {_shape(reward)}")
    if isinstance(baseline, torch.Tensor) and baseline.shape != log_prob.shape:
        raise ValueError(f"baseline must have log_prob's shape {tuple(log_prob.shape)}, got {_shape(baseline)}")
    if baseline is not None and not isinstance(baseline, (torch.Tensor, int, float)) or isinstance(baseline, bool):
        raise ValueError(f"baseline must be None, a number or a tensor, got {type(baseline).__name__}")
    R = reward if log_prob.dim() == 1 else reward[:, None]  # (B,) or (B, 1): one reward for every draw
    advantage = (R - (0.0 if baseline is None else baseline)).detach()  # R - b: a constant of the gradient
    terms = advantage * log_prob  # (B,) or (B, G)
    return -(terms if terms.dim() == 1 else terms.sum(dim=1)).mean()


def baseline_loss(baseline: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """The baseline regressed to the reward: mean (b_bg - R_b)^2, R detached.

    Shape: baseline (B,) or (B, G); reward (B,). Returns a scalar.
    """
    if not isinstance(baseline, torch.Tensor) or baseline.dim() not in (1, 2):
        raise ValueError(f"baseline must have shape (B,) or (B, G), got {_shape(baseline)}")
    if not isinstance(reward, torch.Tensor) or tuple(reward.shape) != tuple(baseline.shape[:1]):
        raise ValueError(f"reward must have shape (B,) = {tuple(baseline.shape[:1])}, got {_shape(reward)}")
    R = reward.detach() if baseline.dim() == 1 else reward.detach()[:, None]
    return ((baseline - R) ** 2).mean()


# -- glimpses ----------------------------------------------------------------------------------------


def _check_grid(image_size: int, patch: int, stride: int) -> None:
    for name, value in (("image_size", image_size), ("patch", patch), ("stride", stride)):
        check_positive_int(name, value)
    if patch > image_size or (image_size - patch) % stride:
        raise ValueError(f"patches of {patch} at a stride of {stride} must tile an image of {image_size}: "
                         f"need patch <= image_size and (image_size - patch) divisible by stride")


def glimpse_places(image_size: int = 8, patch: int = 4, stride: int = 2) -> torch.Tensor:
    """The top-left corner (row, column) of each of the L places of the grid, row by row: (L, 2)."""
    _check_grid(image_size, patch, stride)
    starts = torch.arange(0, image_size - patch + 1, stride)  # (n,)
    return torch.cartesian_prod(starts, starts)  # (L, 2), L = n * n


def glimpse_patches(images: torch.Tensor, patch: int = 4, stride: int = 2) -> torch.Tensor:
    """Every patch a glimpse can read: images (B, N, N) to (B, L, P), P = patch * patch.

    Place l is ``glimpse_places(N, patch, stride)[l]``; a patch's pixels are in row order.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 3 or images.shape[1] != images.shape[2] or \
            not images.dtype.is_floating_point:
        raise ValueError(f"images must be square floats (B, N, N), got {_shape(images)}")
    _check_grid(images.shape[1], patch, stride)
    return F.unfold(images.unsqueeze(1), patch, stride=stride).transpose(1, 2)  # (B, P, L) -> (B, L, P)


class GlimpseOutput(NamedTuple):
    """What a ``GlimpseClassifier`` returns, batch first."""

    logits: torch.Tensor  # (B, C), after the last glimpse
    places: torch.Tensor  # (B, G) int64, the place of each glimpse (soft: the most probable)
    log_prob: torch.Tensor  # (B, G), log pi(l_g | h_{g-1}) of those places
    probs: torch.Tensor  # (B, G, L), the policy of each glimpse (random: uniform)
    baseline: torch.Tensor  # (B, G), b_g, predicted from h_{g-1} (detached)


class GlimpseClassifier(nn.Module):
    r"""Classify an image from G glimpses of one patch each, chosen one after another (Mnih et al., 2014).

    With the patches x_1 ... x_L of the image (``glimpse_patches``), e_l the one-hot code of place
    l, and h_0 = 0, glimpse g = 1 ... G:

    .. math::

        \pi(\cdot \mid h_{g-1}) = \mathrm{softmax}(W_\pi h_{g-1} + b_\pi), \quad
        z_g = \mathrm{relu}(W_z [x_{l_g}; e_{l_g}] + b_z), \quad h_g = \mathrm{GRU}(h_{g-1}, z_g)

    then the class scores W_y h_G + b_y, and the baseline b_g = w_b^T h_{g-1} + c_b on a detached
    h_{g-1}. ``attention`` chooses l_g: ``"hard"`` draws it from pi while training (or with
    ``sample=True``) and takes pi's most probable place otherwise; ``"soft"`` reads the expected
    glimpse [sum_l pi_l x_l; pi] instead of one place; ``"random"`` draws l_g uniformly.

    Parameters: ``W_z`` (H, P + L), ``core`` (a ``GRUCell`` (H, H)), ``policy`` W_pi (L, H),
    ``baseline`` (1, H), ``classifier`` W_y (C, H).

    Shape:
        images: (B, N, N), N = ``image_size``; returns a ``GlimpseOutput``.
    """

    def __init__(self, attention: str = "hard", glimpses: int = 2, patch: int = 4, stride: int = 2,
                 image_size: int = 8, hidden_size: int = 64, classes: int = 10):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        for name, value in (("glimpses", glimpses), ("hidden_size", hidden_size), ("classes", classes)):
            check_positive_int(name, value)
        self.register_buffer("places", glimpse_places(image_size, patch, stride), persistent=False)  # (L, 2)
        self.attention, self.glimpses, self.patch, self.stride, self.image_size = \
            attention, glimpses, patch, stride, image_size
        L, P = len(self.places), patch * patch
        self.W_z = nn.Linear(P + L, hidden_size)  # the glimpse network: (H, P + L)
        self.core = GRUCell(hidden_size, hidden_size)
        self.policy = nn.Linear(hidden_size, L)  # W_pi: (L, H)
        self.baseline = nn.Linear(hidden_size, 1)  # (1, H)
        self.classifier = nn.Linear(hidden_size, classes)  # W_y: (C, H)

    def forward(self, images: torch.Tensor, sample: bool | None = None,
                generator: torch.Generator | None = None) -> GlimpseOutput:
        if isinstance(images, torch.Tensor) and images.dim() == 3 and tuple(images.shape[1:]) != (
                self.image_size,) * 2:
            raise ValueError(f"images must have shape (B, {self.image_size}, {self.image_size}), got {_shape(images)}")
        x = glimpse_patches(images, self.patch, self.stride)  # (B, L, P)
        sample = self.training if sample is None else sample
        B, L = x.shape[0], x.shape[1]
        h = self.core.initial_state(B)  # h_0 = 0: (B, H)
        out = {"places": [], "log_prob": [], "probs": [], "baseline": []}
        for _ in range(self.glimpses):
            log_pi = torch.log_softmax(self.policy(h), dim=-1)  # log pi(. | h_{g-1}): (B, L)
            l, log_pi, z_in = self._look(x, log_pi, sample, generator)  # (B,), (B, L), (B, P + L)
            out["places"].append(l)
            out["log_prob"].append(log_pi.gather(1, l[:, None]).squeeze(1))  # log pi(l_g): (B,)
            out["probs"].append(log_pi.exp())
            out["baseline"].append(self.baseline(h.detach()).squeeze(1))  # b_g: its loss stops here (B,)
            h, _ = self.core(h, torch.relu(self.W_z(z_in)))  # h_g = GRU(h_{g-1}, z_g): (B, H)
        stacked = {k: torch.stack(v, dim=1) for k, v in out.items()}  # (B, G) each, probs (B, G, L)
        return GlimpseOutput(self.classifier(h), **stacked)

    def _look(self, x: torch.Tensor, log_pi: torch.Tensor, sample: bool, generator):
        """The glimpse's place (B,), the policy's log-probabilities (B, L), and what z_g reads (B, P + L)."""
        B, L = log_pi.shape
        if self.attention == "soft":
            pi = log_pi.exp()  # (B, L)
            expected = (pi.unsqueeze(1) @ x).squeeze(1)  # sum_l pi_l x_l: (B, 1, L) @ (B, L, P) -> (B, P)
            return pi.argmax(-1), log_pi, torch.cat([expected, pi], dim=-1)  # the expectation of [x_l; e_l]
        if self.attention == "random":
            log_pi = torch.full_like(log_pi, -torch.log(torch.tensor(float(L))).item())  # uniform: log 1/L
        if sample or self.attention == "random":
            gdev = generator.device if generator is not None else x.device
            l = torch.multinomial(log_pi.detach().exp().to(gdev), 1, generator=generator).squeeze(1).to(x.device)
        else:
            l = log_pi.argmax(-1)  # (B,)
        e_l = F.one_hot(l, L).to(x.dtype)  # (B, L): no gradient into the policy through the draw
        return l, log_pi, torch.cat([x[torch.arange(B, device=x.device), l], e_l], dim=-1)

    def extra_repr(self) -> str:
        return (f"attention={self.attention!r}, glimpses={self.glimpses}, patch={self.patch}, stride={self.stride}, "
                f"places={len(self.places)}")


def glimpse_loss(model: GlimpseClassifier, batch, generator: torch.Generator | None = None):
    """``fit``'s loss for a ``GlimpseClassifier``: cross-entropy, plus REINFORCE and the baseline for hard attention.

    batch: ``(images (B, N, N), labels (B,))``. The reward is R = 1 where the classifier's argmax
    is the label, else 0 (a number, no gradient). For ``"hard"``:
    loss = CE + ``reinforce_surrogate(log_prob, R, baseline)`` + ``baseline_loss(baseline, R)``;
    for ``"soft"`` and ``"random"`` the cross-entropy alone. Logs the accuracy (the mean reward).
    """
    images, labels = batch
    out = model(images, generator=generator)
    loss = F.cross_entropy(out.logits, labels)  # the classifier, the core and the glimpse network, by backprop
    R = (out.logits.detach().argmax(-1) == labels).to(out.logits.dtype)  # (B,)
    if model.attention == "hard":
        loss = loss + reinforce_surrogate(out.log_prob, R, out.baseline) + baseline_loss(out.baseline, R)
    return loss, {"accuracy": float(R.mean())}
