r"""Captioning images: one vector as a decoder's initial state (chapter 4), or regions as its memory (chapter 5).

Chapter 4's captioner has the shape of Vinyals et al.'s Show and Tell (2015): an image network
turns the image v into one feature vector, the decoder's initial state, and the decoder writes
the caption word by word,

.. math::

    s_0 = \mathrm{cnn}(v), \qquad s_t, o_t = f(s_{t-1}, E\, y_{t-1}), \qquad
    p(y_t \mid y_{<t}, v) = \mathrm{softmax}(W^o o_t)

with y_0 = ``<bos>``:

- ``ImageEncoder``: images (B, R, W) to one vector (B, C), a small convolutional network;
- ``Captioner``: an image encoder and chapter 4's ``seqmem.Decoder`` (its bridge turns the vector
  into s_0) with the decoding protocol of ``seqmem.seq2seq`` (``start``, ``step``), so
  ``seqmem.greedy`` and ``seqmem.beam_search`` caption with it.

Show, Attend and Tell keeps one feature vector a_i for each of the S regions of an image (the cells
of a convolutional network's last grid) instead of one vector for the whole image, and lets the
decoder choose, for every word, where to look:

.. math::

    a = \{a_1, \dots, a_S\} = \mathrm{cnn}(v), \qquad
    \alpha_{ti} = \mathrm{softmax}_i\, f_{att}(a_i, h_{t-1}), \qquad
    \hat z_t = \textstyle\sum_i \alpha_{ti} a_i

the context \hat z_t entering the word's LSTM step (their eqs. (4)-(6), the "soft" deterministic
attention). Their initial state is predicted from the mean of the regions, h_0 = f_init(mean_i a_i).

In the library the decoder is chapter 5's ``seqmem.attention.AttentionDecoder`` unchanged: the
regions are its memory (every region takes part: the mask is all True), the regions' mean is the
context its bridge turns into s_0. What this module adds for it is the image side:

- ``RegionEncoder``: images (B, R, W), R = 8 rows of the library's digit images, to S = W / w
  vertical strips of w pixel columns, each a feature vector; two 3 x 3 convolutions keep each
  strip's feature local (it sees its own columns and two on either side), and a learned position
  embedding per strip tells the decoder where a strip lies (the convolution alone cannot: it
  reads every strip with the same weights);
- ``AttentionCaptioner``: a ``RegionEncoder`` and an ``AttentionDecoder`` with the decoding
  protocol of ``seqmem.seq2seq`` (``start``, ``step``), so ``seqmem.greedy`` and
  ``seqmem.beam_search`` caption with it, and ``forward(..., return_weights=True)`` returns the
  attention of every word over the strips.

Dimensions: B batch, R image rows, W image width (pixel columns), w strip width, S = W / w strips,
C convolution channels (``ImageEncoder``: its vector's size), M region feature size, H decoder
state size, T caption length, V vocabulary size.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionDecoder
from .core import check_positive_int
from .seq2seq import Decoder, Seq2SeqState, check_ids
from .text import BOS_ID

__all__ = ["ImageEncoder", "Captioner", "RegionEncoder", "AttentionCaptioner"]


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def _check_images(images, height: int, width: int) -> None:
    """images must be a float tensor (B, height, width)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 3 or \
            tuple(images.shape[1:]) != (height, width) or not images.dtype.is_floating_point:
        raise ValueError(f"images must be floats of shape (B, {height}, {width}), got {_shape(images)}"
                         + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else ""))


class ImageEncoder(nn.Module):
    """Chapter 4's image network: images (B, R, W) to one feature vector (B, C), cnn(v).

    Two 3 x 3 convolutions (16 and 32 channels, zero padding, ReLU) with a 2 x 2 max-pooling
    between them, and a linear layer from the flattened (32, R / 2, W / 2) grid to C =
    ``features`` numbers. The whole image enters one vector: there are no regions to attend to
    (that is ``RegionEncoder``'s job, chapter 5).

    Parameters: ``net``, an ``nn.Sequential`` whose ``net.0`` and ``net.3`` are the convolutions
    and ``net.6`` the linear layer (C, 32 * R / 2 * W / 2).

    Shape:
        images: (B, R, W) floats, R = ``height``, W = ``width`` (both even: the pooling halves them).
        returns: (B, C).
    """

    def __init__(self, width: int, features: int, height: int = 8):
        super().__init__()
        for name, value in (("width", width), ("features", features), ("height", height)):
            check_positive_int(name, value)
        if width % 2 or height % 2:
            raise ValueError(f"width and height must be even (the 2 x 2 pooling halves them), got width {width} "
                             f"and height {height}")
        self.width, self.height, self.output_size = width, height, features
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, R / 2, W / 2)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),  # (B, 32 * R / 2 * W / 2)
            nn.Linear(32 * (height // 2) * (width // 2), features))  # (B, C)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.height, self.width)
        return self.net(images.unsqueeze(1))  # one channel in: (B, 1, R, W); out (B, C)

    def extra_repr(self) -> str:
        return f"width={self.width}, height={self.height}, features={self.output_size}"


class Captioner(nn.Module):
    """Chapter 4's captioner, Show and Tell's shape: the image's vector is the decoder's initial state.

    ``encoder`` is any module from images to a context (B, C): an ``ImageEncoder``, or another
    image network (an MLP over the pixels, say). ``decoder`` is a ``seqmem.Decoder`` given
    ``context_size=C``: its bridge maps the context to s_0 (with C = H, the size of the cell's
    state, it copies it: s_0 = cnn(v)). Where the encoder has an ``output_size`` it must be the
    bridge's ``context_size``.

    Shape:
        ``start(images (B, R, W), lengths=None)`` gives the decoder's state s_0 (the bridged
        context: a tensor (B, H), or the cell's NamedTuple); ``lengths`` is the protocol's second
        argument and must be ``None``: images are not padded.
        ``step(state, tokens (B,))`` gives ``(state, logits (B, V))``, the decoder's step.
        ``forward(images, target_ids (B, T))``: the logits (B, T, V) under teacher forcing
        (``<bos>``, then the true words).
    """

    def __init__(self, encoder: nn.Module, decoder: Decoder, bos_id: int = BOS_ID):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise ValueError(f"encoder must be an nn.Module (images to a context), got {type(encoder).__name__}")
        if not isinstance(decoder, Decoder):
            raise ValueError(f"decoder must be a seqmem.Decoder, got {type(decoder).__name__}")
        size = getattr(encoder, "output_size", None)
        if decoder.bridge is not None and size is not None and size != decoder.bridge.context_size:
            raise ValueError(f"the decoder's bridge reads contexts of {decoder.bridge.context_size} features but the "
                             f"encoder gives {size}")
        self.encoder, self.decoder, self.bos_id = encoder, decoder, bos_id

    def start(self, images: torch.Tensor, lengths=None):
        if lengths is not None:
            raise ValueError("images are not padded: lengths must be None")
        return self.decoder.initial_state(self.encoder(images), images.shape[0])  # s_0: (B, H)

    def step(self, state, tokens: torch.Tensor):
        return self.decoder.step(state, tokens)  # (B, H), logits (B, V)

    def forward(self, images: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        B, T = check_ids(target_ids, "target_ids", images.shape[0] if isinstance(images, torch.Tensor) else None)
        inputs = torch.cat([torch.full_like(target_ids[:, :1], self.bos_id), target_ids[:, :-1]], dim=1)  # (B, T)
        state, logits = self.start(images), []
        for t in range(T):
            state, logits_t = self.step(state, inputs[:, t])  # (B, V)
            logits.append(logits_t)
        return torch.stack(logits, dim=1)  # (B, T, V)


class RegionEncoder(nn.Module):
    """Images (B, R, W) to S = W / strip_width region features (B, S, M) and their mean (B, M).

    Two 3 x 3 convolutions (``channels`` each, ReLU, zero padding: the grid stays R x W), then each
    strip of ``strip_width`` columns, all R rows and C channels flattened, goes through one linear
    layer and a ReLU to M = ``features`` numbers, plus its learned position embedding p_i:
    a_i = relu(W_a vec(strip_i)) + p_i. A strip's feature depends on its own columns and the two
    next to it on either side (the receptive field of two 3 x 3 convolutions), never farther.

    Parameters: ``conv`` (two ``nn.Conv2d``), ``W_a`` (M, C * R * w), ``position`` (S, M).

    Shape:
        images: (B, R, W) floats, R = ``height``, W = ``width``.
        returns ``(regions, context)``: regions (B, S, M), context (B, M) their mean.
    """

    def __init__(self, width: int, features: int, strip_width: int = 4, channels: int = 16, height: int = 8):
        super().__init__()
        for name, value in (("width", width), ("features", features), ("strip_width", strip_width),
                            ("channels", channels), ("height", height)):
            check_positive_int(name, value)
        if width % strip_width:
            raise ValueError(f"width {width} must be a multiple of strip_width {strip_width}")
        self.width, self.height, self.strip_width = width, height, strip_width
        self.regions, self.output_size = width // strip_width, features  # S, M
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())  # (B, C, R, W)
        self.W_a = nn.Linear(channels * height * strip_width, features)  # (M, C * R * w)
        self.position = nn.Parameter(0.1 * torch.randn(self.regions, features))  # p_i: (S, M)

    def forward(self, images: torch.Tensor):
        _check_images(images, self.height, self.width)
        B, S, w = images.shape[0], self.regions, self.strip_width
        grid = self.conv(images.unsqueeze(1))  # one channel in: (B, C, R, W)
        strips = grid.unflatten(3, (S, w)).permute(0, 3, 1, 2, 4).reshape(B, S, -1)  # (B, S, C * R * w)
        regions = torch.relu(self.W_a(strips)) + self.position  # a_i: (B, S, M)
        return regions, regions.mean(dim=1)  # (B, S, M), (B, M): Xu et al.'s mean_i a_i for h_0

    def strip_of_column(self, column: int) -> int:
        """The strip (0 ... S - 1) that holds pixel column ``column``."""
        if not 0 <= column < self.width:
            raise ValueError(f"column must lie in [0, {self.width}), got {column!r}")
        return column // self.strip_width

    def extra_repr(self) -> str:
        return f"width={self.width}, strip_width={self.strip_width}, regions={self.regions}"


class AttentionCaptioner(nn.Module):
    """Show, attend and tell in miniature: a ``RegionEncoder`` and an ``AttentionDecoder`` over its regions.

    ``decoder.memory_size`` must be the encoder's M; give the decoder ``context_size=M`` for
    Xu et al.'s s_0 from the regions' mean (or ``None`` for a zero s_0). Every region takes part
    in every step's attention (the mask is all True: an image has no padding).

    Shape:
        ``start(images (B, R, W), lengths=None)`` gives a ``seqmem.Seq2SeqState`` (``lengths``
        is the protocol's second argument and must be ``None``: images are not padded).
        ``step(state, tokens (B,))`` gives ``(state, logits (B, V))``, the step's weights over the
        regions in ``state.decoder.weights`` (B, S).
        ``forward(images, target_ids (B, T), return_weights=False)``: the logits (B, T, V) under
        teacher forcing (``<bos>``, then the true words), and with ``return_weights`` the
        weights (B, T, S), row t the attention that wrote word t.
    """

    def __init__(self, encoder: RegionEncoder, decoder: AttentionDecoder, bos_id: int = BOS_ID):
        super().__init__()
        if not isinstance(decoder, AttentionDecoder):
            raise ValueError(f"decoder must be a seqmem.AttentionDecoder, got {type(decoder).__name__}")
        if decoder.memory_size != encoder.output_size:
            raise ValueError(f"the decoder attends over memories of {decoder.memory_size} features but the encoder "
                             f"gives regions of {encoder.output_size}")
        self.encoder, self.decoder, self.bos_id = encoder, decoder, bos_id

    def start(self, images: torch.Tensor, lengths=None) -> Seq2SeqState:
        if lengths is not None:
            raise ValueError("images are not padded: lengths must be None")
        memory, context = self.encoder(images)  # (B, S, M), (B, M)
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)  # (B, S): every region
        return Seq2SeqState(self.decoder.start(context, memory, mask), memory, mask)

    def step(self, state: Seq2SeqState, tokens: torch.Tensor):
        decoder, logits = self.decoder.step(state.decoder, tokens, state.memory, state.mask)
        return state._replace(decoder=decoder), logits  # (B, V)

    def forward(self, images: torch.Tensor, target_ids: torch.Tensor, return_weights: bool = False):
        B, T = check_ids(target_ids, "target_ids", images.shape[0] if isinstance(images, torch.Tensor) else None)
        inputs = torch.cat([torch.full_like(target_ids[:, :1], self.bos_id), target_ids[:, :-1]], dim=1)  # (B, T)
        state, logits, weights = self.start(images), [], []
        for t in range(T):
            state, logits_t = self.step(state, inputs[:, t])  # (B, V)
            logits.append(logits_t)
            weights.append(state.decoder.weights)  # alpha_t: (B, S)
        logits = torch.stack(logits, dim=1)  # (B, T, V)
        return (logits, torch.stack(weights, dim=1)) if return_weights else logits  # (B, T, S)
