r"""Language models: counting n-grams, then a recurrent network that reads the whole past.

A language model gives the probability of a text one token at a time,
P(w_1, ..., w_T) = \prod_t P(w_t | w_1, ..., w_{t-1}). The lecture's traditional models cut the past
to the last n - 1 tokens and count (Seed 001):

.. math::

    P(w_2 | w_1) = \frac{count(w_1, w_2)}{count(w_1)}, \qquad
    P(w_3 | w_1, w_2) = \frac{count(w_1, w_2, w_3)}{count(w_1, w_2)}

Larger n captures longer dependencies but needs far more data: most long n-grams are never seen,
and an unseen one would get probability 0. Add-alpha smoothing gives every event a share,
P(w | c) = (count(c, w) + α) / (count(c) + α V). A recurrent language model instead conditions on
all previous tokens through its state h and shares what it learns between similar contexts.

Both are scored by the perplexity of held-out text, exp(-(1/T) \sum_t \log P(w_t | past)): the
number of equally likely tokens the model is, on average, choosing between. A model that knows
nothing (uniform over V tokens) has perplexity V. ``NGramLM.perplexity`` scores a counting model;
``seqmem.metrics.perplexity`` any recurrent one, such as ``CharRNNLM``.

Training batches: ``random_windows`` (random pieces of the text) and ``text_streams`` (B
continuous streams, read chunk by chunk with the state carried, as ``seqmem.TruncatedBPTT`` does).

The text: ``stdlib_text()``, the docstrings of the Python standard library, which ships with every
Python and needs no download.

Dimensions: B batch, T time, V vocabulary size, E embedding size, H hidden size, L layers.
"""
from __future__ import annotations

import ast
import functools
import itertools
import os
import sysconfig
import unicodedata
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .core import History, TruncatedBPTT, check_positive_int, fit
from .core import seed as seed_all
from .heads import Tagger, cross_entropy
from .metrics import bits_per_char, perplexity_of
from .rnn import RNN
from .text import Vocab

__all__ = ["stdlib_text", "split_text", "NGramLM", "CharRNNLM", "CELLS", "random_windows", "text_streams",
           "next_token_loss", "train_continual", "sample"]


# ----------------------------------------------------------------------------------------------
# The corpus


def _docstrings(node: ast.AST):
    """The docstrings of a module, its classes and functions, nested ones included, in source order."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        doc = ast.get_docstring(node, clean=True)  # clean: dedented as inspect.cleandoc does
        if doc:
            yield doc
    for child in ast.iter_child_nodes(node):
        yield from _docstrings(child)


def _normalise(text: str) -> str:
    # NFKD splits accented letters ("é" -> "e" + accent); then only printable ASCII and newlines stay.
    text = unicodedata.normalize("NFKD", text).replace("\t", " ").replace("\r", "")
    return "".join(ch for ch in text if ch == "\n" or " " <= ch <= "~")


@functools.lru_cache(maxsize=2)
def _stdlib_text(stdlib: str) -> str:
    names = sorted(f for f in os.listdir(stdlib) if f.endswith(".py") and not f.startswith("_"))
    docs = []
    for name in names:
        with open(os.path.join(stdlib, name), "rb") as f:
            source = f.read()  # bytes: ast honours each file's coding declaration
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a file from another Python version; none in a clean install
            continue
        docs.extend(_docstrings(tree))
    return _normalise("\n\n".join(docs))


def stdlib_text(max_chars: int | None = None) -> str:
    """English prose that ships with Python: the docstrings of the standard library.

    The text is every docstring (module, class, function, method; nested ones too) of the public
    top-level modules of the standard library, the ``*.py`` files directly under
    ``sysconfig.get_paths()["stdlib"]`` whose names do not start with "_" (``argparse.py`` to
    ``zipimport.py``; packages such as ``email/`` and private modules such as ``_pydecimal.py``
    are left out). Files are read in sorted order, docstrings in source order, and joined by a
    blank line. The text is normalised to printable ASCII and newline (96 characters at most):
    accents are dropped ("é" -> "e"), tabs become spaces, other characters are removed.

    It is the same on every machine for a given Python version: about 790,000 characters on
    Python 3.11. It is prose about code, with doctest examples (``>>> ...``) mixed in. The first
    call parses the files (a second or two); later calls are cached.

    Args:
        max_chars: keep only the first ``max_chars`` characters (all when ``None``).
    """
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 0):
        raise ValueError(f"max_chars must be a non-negative int or None, got {max_chars!r}")
    text = _stdlib_text(sysconfig.get_paths()["stdlib"])
    return text if max_chars is None else text[:max_chars]


def split_text(text, fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> tuple:
    """Split a text (or any sliceable sequence, a tensor of ids too) into contiguous blocks.

    With the default fractions: train, validation and test, the first 90%, the next 5% and the
    last 5%. Contiguous blocks, not shuffled characters: held-out text must be text the model has
    not seen, and shuffling would leak each neighbour of a training character into the test set.
    """
    if len(fractions) < 1 or any(not isinstance(p, (int, float)) or p <= 0 for p in fractions):
        raise ValueError(f"fractions must be positive numbers, got {tuple(fractions)!r}")
    if abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {tuple(fractions)!r} (sum {sum(fractions):.6g})")
    n = len(text)
    cuts = [0] + [round(n * c) for c in itertools.accumulate(fractions)]
    cuts[-1] = n  # the last block ends at the end, whatever the rounding
    return tuple(text[a:b] for a, b in zip(cuts[:-1], cuts[1:]))


# ----------------------------------------------------------------------------------------------
# N-gram models: counting


def _as_ids(tokens) -> np.ndarray:
    """Token ids as a 1-D int64 NumPy array (from a tensor, an array or a list)."""
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    ids = np.asarray(tokens)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"tokens must be a 1-D sequence of integer ids (T,), got shape {ids.shape} "
                         f"and dtype {ids.dtype}")
    return ids.astype(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values[keys == q]`` for every query, 0 where a query is not among the sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(queries.shape)
    i = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[i] == queries, values[i], 0)


class NGramLM:
    r"""An n-gram language model over token ids, from counts with add-alpha smoothing.

    Order k looks at the last k - 1 tokens (its context c) and estimates

    .. math::  P_k(w | c) = \frac{count(c, w) + \alpha}{count(c) + \alpha V}

    with count(c) the number of times c is followed by any token, so that P_k sums to 1 over the
    V tokens. α = 0 is the lecture's maximum-likelihood estimate (an unseen n-gram gets probability
    0 and the perplexity of a text that contains one is infinite); α = 1 is Laplace's add-one rule.
    A context never seen gets the uniform distribution 1/V.

    ``lambdas`` (one weight per order 1..n, summing to 1) turns on linear interpolation,
    P(w | c) = Σ_k λ_k P_k(w | last k - 1 tokens of c), which lets a rare long context lean on the
    shorter ones. Without it only order n is used.

    The first n - 1 tokens of a text have shorter contexts; they are scored with the highest order
    their context allows (with interpolation: the orders that fit, their λ renormalised).

    Counts are stored as sorted arrays of n-grams read as base-V numbers and looked up with binary
    search, so scoring 100,000 tokens takes a few milliseconds. V ** n must stay below 2 ** 62.
    """

    def __init__(self, n: int, alpha: float = 1.0, lambdas: Sequence[float] | None = None):
        check_positive_int("n", n)
        if not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
        if lambdas is not None:
            lambdas = np.asarray(lambdas, dtype=float)
            if lambdas.shape != (n,) or (lambdas < 0).any() or abs(lambdas.sum() - 1) > 1e-6:
                raise ValueError(f"lambdas must be {n} non-negative weights (orders 1..{n}) summing "
                                 f"to 1, got {lambdas.tolist()}")
        self.n, self.alpha, self.lambdas = n, float(alpha), lambdas
        self.vocab_size: int | None = None
        self._tables: list = []  # per order k = 1..n: (n-gram keys, counts, context keys, counts)

    def fit(self, tokens, vocab_size: int | None = None) -> "NGramLM":
        """Count the 1- to n-grams of ``tokens`` (T,) ids in [0, V); V defaults to max id + 1."""
        ids = _as_ids(tokens)
        V = vocab_size
        if V is None:  # the ids seen, from 0 to the largest
            V = int(ids.max()) + 1 if ids.size else 0
        check_positive_int("vocab_size", V)
        V = int(V)
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"token ids must lie in [0, {V}), got values from {ids.min()} to {ids.max()}")
        if V ** self.n >= 2 ** 62:
            raise ValueError(f"V ** n = {V}^{self.n} is too large to index n-grams with int64")
        self.vocab_size = V
        self._tables = [self._count(ids, k) for k in range(1, self.n + 1)]
        return self

    @property
    def num_ngrams(self) -> int:
        """The model's size: how many distinct n-grams of orders 1..n it has counted and stores."""
        self._check_fitted()
        return sum(len(keys) for keys, *_ in self._tables)

    def _keys(self, windows: np.ndarray) -> np.ndarray:
        # (N, k) windows -> (N,) base-V numbers: (w_1, ..., w_k) -> w_1 V^(k-1) + ... + w_k
        k = windows.shape[-1]
        return windows @ (self.vocab_size ** np.arange(k - 1, -1, -1, dtype=np.int64))

    def _count(self, ids: np.ndarray, k: int):
        if len(ids) < k:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        keys = self._keys(np.lib.stride_tricks.sliding_window_view(ids, k))  # (T - k + 1,)
        keys, counts = np.unique(keys, return_counts=True)
        # the context of an n-gram is all but its last token: key // V
        ctx, which = np.unique(keys // self.vocab_size, return_inverse=True)
        ctx_counts = np.bincount(which.ravel(), weights=counts, minlength=len(ctx))
        return keys, counts, ctx, ctx_counts

    def _smoothed(self, k: int, keys: np.ndarray) -> np.ndarray:
        """P_k(w | c) for n-grams (c, w) given as base-V keys (any shape)."""
        ngrams, counts, ctx, ctx_counts = self._tables[k - 1]
        c = _lookup(ngrams, counts, keys)
        den = _lookup(ctx, ctx_counts, keys // self.vocab_size) + self.alpha * self.vocab_size
        safe = np.where(den > 0, den, 1.0)
        return np.where(den > 0, (c + self.alpha) / safe, 1.0 / self.vocab_size)

    def _check_fitted(self):
        if self.vocab_size is None:
            raise RuntimeError("this NGramLM is not fitted yet: call fit(tokens) first")

    def _combine(self, P: np.ndarray) -> np.ndarray:
        """Mix per-order probabilities P (n, ...) (NaN where an order does not fit) into one."""
        fits = ~np.isnan(P)
        if self.lambdas is None:  # the highest order that fits
            highest = fits.shape[0] - 1 - np.argmax(fits[::-1], axis=0)
            return np.take_along_axis(P, highest[None], axis=0)[0]
        w = self.lambdas.reshape((-1,) + (1,) * (P.ndim - 1)) * fits
        return np.nansum(w * P, axis=0) / w.sum(axis=0)

    def probs(self, context=()) -> torch.Tensor:
        """The distribution P(· | context) over the V tokens: float64 (V,); only the last n - 1 ids count."""
        self._check_fitted()
        ctx = _as_ids(context)
        ctx = ctx[len(ctx) - min(len(ctx), self.n - 1):]  # the last n - 1 tokens at most
        V = self.vocab_size
        P = np.full((self.n, V), np.nan)  # (n, V): one row per order
        for k in range(1, len(ctx) + 2):
            prefix = self._keys(ctx[len(ctx) - (k - 1):][None])[0] if k > 1 else 0
            P[k - 1] = self._smoothed(k, prefix * V + np.arange(V))
        return torch.from_numpy(self._combine(P))

    def prob(self, context, token: int) -> float:
        """P(token | context)."""
        return float(self.probs(context)[token])

    def log_prob(self, tokens) -> torch.Tensor:
        """log P(w_t | w_1 ... w_{t-1}) for every token of a text: float64 (T,), natural log."""
        self._check_fitted()
        ids = _as_ids(tokens)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {ids.min()} to {ids.max()}")
        T = len(ids)
        P = np.full((self.n, T), np.nan)  # (n, T): order k scores the tokens from position k - 1 on
        for k in range(1, min(self.n, T) + 1):
            P[k - 1, k - 1:] = self._smoothed(k, self._keys(np.lib.stride_tricks.sliding_window_view(ids, k)))
        with np.errstate(divide="ignore"):  # log 0 = -inf for an unseen event when alpha = 0
            return torch.from_numpy(np.log(self._combine(P)))

    def perplexity(self, tokens) -> float:
        """exp of the mean negative log-probability of tokens 1 ... T - 1: V for a model that knows nothing.

        Token 0 has no past and is not scored, as in ``seqmem.metrics.perplexity``, so that a
        counting model and a recurrent one are scored on the same tokens.
        """
        logp = self.log_prob(tokens)
        if len(logp) < 2:
            raise ValueError(f"perplexity needs at least two tokens (the first is not scored), got {len(logp)}")
        return perplexity_of(-logp[1:].mean().item())

    def generate(self, context, n_tokens: int, generator: torch.Generator | None = None) -> list[int]:
        """Sample ``n_tokens`` ids one after another, each from P(· | the last n - 1 ids)."""
        ids = _as_ids(context).tolist()
        out = []
        for _ in range(n_tokens):
            p = self.probs(ids[len(ids) - min(len(ids), self.n - 1):])
            out.append(int(torch.multinomial(p, 1, generator=generator)))
            ids.append(out[-1])
        return out

    def __repr__(self) -> str:
        interp = "" if self.lambdas is None else f", lambdas={self.lambdas.tolist()}"
        return f"NGramLM(n={self.n}, alpha={self.alpha}{interp}, vocab_size={self.vocab_size})"


# ----------------------------------------------------------------------------------------------
# A recurrent language model

#: The sequence layers ``CharRNNLM`` knows by name. Any layer class that takes torch's arguments
#: (input_size, hidden_size, num_layers=, batch_first=, dropout=) works too: ``cell=seqmem.LSTM``.
CELLS: dict[str, type] = {"rnn": RNN}


class CharRNNLM(Tagger):
    r"""A recurrent language model: embedding, recurrent layers, and a linear head over V tokens.

    At each step the token w_t is embedded (x_t = E[w_t], ``torch.nn.Embedding``: the one-hot
    vector times a learned matrix), the recurrent layers update their state, h_t = f(h_{t-1}, x_t),
    and the head gives the logits of the next token, P(w_{t+1} | w_1 ... w_t) = softmax(W^o h_t + b^o).
    Unlike an n-gram model, h_t can carry information from any distance. It is a
    ``seqmem.heads.Tagger`` whose tags are the next tokens.

    Args:
        vocab_size: V. hidden_size: H. num_layers: L stacked recurrent layers.
        cell: a key of ``CELLS`` ("rnn": ``seqmem.RNN``, tanh), or a layer class (``seqmem.LSTM``).
        embedding_dim: E, the size of x_t; H when omitted.
        dropout: between recurrent layers, as in torch.
        **layer_options: passed on to the layer (``variant="CIFG"`` for an LSTM).

    Shape:
        x: (B, T) int64 ids; h: the layer's state, (L, B, H) for an RNN, or None for zeros.
        returns logits (B, T, V) and the final state.
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int = 1, cell="rnn",
                 embedding_dim: int | None = None, dropout: float = 0.0, **layer_options):
        if isinstance(cell, str) and cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)} or a layer class, got {cell!r}")
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("hidden_size", hidden_size)
        E = embedding_dim or hidden_size
        embedding = nn.Embedding(vocab_size, E)  # E: (V, E); created first, then the layer and the head
        layer = CELLS.get(cell, cell) if isinstance(cell, str) else cell
        rnn = layer(E, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout, **layer_options)
        super().__init__(rnn, vocab_size, embedding=embedding)  # the head W^o: (V, H)
        self.vocab_size, self.cell = vocab_size, cell

    def forward(self, x: torch.Tensor, h=None):
        if x.dim() != 2 or x.dtype.is_floating_point:
            raise ValueError(f"x must be token ids of shape (B, T) and an integer dtype, "
                             f"got shape {tuple(x.shape)} and dtype {x.dtype}")
        return super().forward(x, h)  # (B, T, V), the final state


def next_token_loss(model: nn.Module, batch) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions, in nats: a ``loss_fn`` for ``seqmem.fit``.

    ``batch`` is ``(x, y)``: (B, T) ids, y the tokens that follow x (as ``random_windows`` and
    ``text_streams`` give).
    """
    x, y = batch
    logits, _ = model(x)  # (B, T, V)
    return cross_entropy(logits, y)  # over B * T tokens


def random_windows(ids: torch.Tensor, batch_size: int, seq_len: int,
                   generator: torch.Generator | None = None):
    """A training batch of B random contiguous windows of a text, each with its next tokens.

    Window b starts at a uniformly random position s_b; x[b] = ids[s_b : s_b + T] and
    y[b] = ids[s_b + 1 : s_b + T + 1], so that y[b, t] is the token after x[b, t]. Starts are drawn
    on the generator's device (a seed gives the same batch on every device); tensors follow ``ids``.

    Returns:
        x, y: (B, T) int64.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D tensor of token ids (N,), got {got}")
    check_positive_int("batch_size", batch_size)
    check_positive_int("seq_len", seq_len)
    if len(ids) < seq_len + 1:
        raise ValueError(f"a window of seq_len={seq_len} needs at least {seq_len + 1} ids, got {len(ids)}")
    gdev = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=generator, device=gdev)
    idx = starts.to(ids.device)[:, None] + torch.arange(seq_len + 1, device=ids.device)  # (B, T + 1)
    windows = ids[idx]  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def text_streams(ids: torch.Tensor, batch_size: int):
    """Cut a text into ``batch_size`` contiguous streams, each with the tokens that follow it.

    Stream b is the b-th of B equal consecutive pieces of the text; the last ``len(ids) % B`` tokens
    (and one more, to have a next token) are dropped. Read the streams chunk by chunk along time,
    carrying the state (``seqmem.fit(..., strategy=seqmem.TruncatedBPTT(k))``), and each batch row continues the text
    where the previous chunk left it.

    Args:
        ids: (N,) int64 token ids.

    Returns:
        x, y: (B, N') int64 with N' = (N - 1) // B, y[b, t] the token after x[b, t].
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point:
        got = (tuple(ids.shape), ids.dtype) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D integer tensor (N,), got {got}")
    check_positive_int("batch_size", batch_size)
    n = (len(ids) - 1) // batch_size  # tokens per stream
    if n < 1:
        raise ValueError(f"{len(ids)} ids are too few for {batch_size} streams")
    x = ids[: n * batch_size].view(batch_size, n)  # (B, N'): stream b starts at b * N'
    y = ids[1 : n * batch_size + 1].view(batch_size, n)  # (B, N')
    return x, y


def train_continual(train_ids: torch.Tensor, valid_ids: torch.Tensor, vocab_size: int, *, steps: int, chunk: int,
                    batch_size: int, hidden_size: int, cell="rnn", embedding_dim: int | None = None, lr: float = 1e-2,
                    clip_grad_norm: float | None = 1.0, seed: int = 0, progress: bool = False, **layer_options):
    """One seeded run of a continual character LM: ``CharRNNLM`` on streams whose state is never reset.

    The training text is cut into ``batch_size`` streams (``text_streams``) read ``chunk`` tokens at
    a time for ``steps`` optimizer steps, the state carried from chunk to chunk (truncated BPTT:
    ``fit(..., strategy=TruncatedBPTT(chunk))``), as Gers et al. (2000) trained the forget gate.
    ``seed`` fixes the weights (every generator is seeded with it). Chapter 3's sweep of the LSTM
    variants (``cell=seqmem.LSTM, variant=...``) and its live version both call this.

    Returns:
        ``(model, history, bpc)``: bpc the bits per character of ``valid_ids`` read in one pass
        from the zero state (inf or nan for a diverged model).
    """
    seed_all(seed)
    model = CharRNNLM(vocab_size, hidden_size, cell=cell, embedding_dim=embedding_dim, **layer_options)
    x, y = text_streams(train_ids, batch_size)  # (B, N') each
    n = steps * chunk  # the first n tokens of every stream: `steps` chunks
    history: History = fit(model, [(x[:, :n], y[:, :n])], next_token_loss, strategy=TruncatedBPTT(chunk), lr=lr,
                           clip_grad_norm=clip_grad_norm, progress=progress)
    return model, history, bits_per_char(model, valid_ids, chunk_len=500)


@torch.no_grad()
def sample(model: nn.Module, vocab: Vocab, prefix: str, n_chars: int, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> str:
    """Let a character LM write: ``prefix`` followed by ``n_chars`` sampled characters.

    The model first reads the prefix; then each step draws the next character from
    softmax(logits / temperature) and feeds it back in. A temperature below 1 sharpens the
    distribution (more likely, more repetitive text), above 1 flattens it; 0 takes the most likely
    character every time. Draws are made on the generator's device, so a seeded generator repeats
    the text on any device.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string (the model needs a first input), got {prefix!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    dev = next(model.parameters()).device
    gdev = generator.device if generator is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    logits, h = model(vocab.encode(prefix).to(dev)[None], None)  # (1, len(prefix), V)
    out = []
    for _ in range(n_chars):
        z = logits[0, -1].to(gdev)  # (V,): the scores of the next character
        if temperature == 0:
            nxt = z.argmax()
        else:
            nxt = torch.multinomial(torch.softmax(z / temperature, dim=-1), 1, generator=generator)[0]
        out.append(int(nxt))
        logits, h = model(torch.tensor([[out[-1]]], device=dev), h)  # (1, 1, V)
    model.train(was_training)
    return prefix + "".join(vocab.decode(out))
