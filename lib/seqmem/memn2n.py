"""End-to-end memory networks (Sukhbaatar, Szlam, Weston and Fergus 2015): attention over sentences.

Seed 000, "Reading Comprehension": a story is written into memory one sentence a slot, the
question reads it by attention, and the reading head may look several times (hops) before
answering. In the paper's notation, for a story x_1 ... x_n and a question q:

- **Input memory.** Each sentence x_i = (x_i1, ..., x_iJ) becomes m_i = Σ_j l_j ⊙ A x_ij, with
  A (V, d) an embedding (as a lookup table, ``A[x_ij]`` is the row of word x_ij). Bag of words
  takes l_j = 1; **position encoding** (PE, section 4.1) weights word j of J in dimension k of d by
  ``l_kj = (1 - j/J) - (k/d)(1 - 2j/J)`` (1-based j and k), so that word order counts.
  **Temporal encoding** adds a learned vector of the sentence's age: m_i = Σ_j l_j ⊙ A x_ij + T_A(i),
  where i counts back from the question (0 for the most recent sentence).
- **Output memory.** c_i = Σ_j l_j ⊙ C x_ij + T_C(i), with its own embedding C.
- **Question.** u = Σ_j l_j ⊙ B q_j.
- **Match.** p_i = softmax(uᵀ m_i), over the slots that hold a sentence (empty slots get 0).
- **Read.** o = Σ_i p_i c_i.
- **Hops.** K layers, each with its own A^k, C^k: u^{k+1} = u^k + o^k.
- **Answer.** â = softmax(W u^{K+1}) = softmax(W (o^K + u^K)), W (V, d): a word of the vocabulary.

**Weight tying** (section 2.2) keeps the parameters few: *adjacent* (A^{k+1} = C^k, W^T = C^K,
B = A^1: K + 1 embeddings in all) or *layer-wise* (A^1 = ... = A^K, C^1 = ... = C^K, and
u^{k+1} = H u^k + o^k with a learned linear map H, as an RNN). ``tying="none"`` gives every hop
its own A, C and the question and answer their own B, W. Tied matrices are one parameter, not
copies: ``model.A[1] is model.C[0]``.

Training (section 4.2) adds two tricks, both options here: **linear start** (LS): the softmax of
every hop is left out (p_i = uᵀ m_i) for the first epochs, then put back; **random noise** (RN):
10 % empty memories are inserted among a training story's sentences, so that the temporal
encoding T_A learns that ages are not exact (``add_empty_memories``).

Dimensions: B batch, M memory slots (sentences), L words per sentence, d embedding size,
V vocabulary size, K hops. Word id 0 is the nil word: padding of sentences and of empty slots,
never counted in a sum over words.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .core import History, check_positive_int, check_shape, fit

__all__ = ["MemN2N", "MemN2NOutput", "position_encoding", "word_weights", "match", "read", "recency",
           "add_empty_memories", "memn2n_loss", "validation_loss", "train_memn2n", "TYINGS"]

#: The weight-tying schemes of section 2.2, and none.
TYINGS = ("adjacent", "layerwise", "none")


# ----------------------------------------------------------------------------------------------
# Sentence representations (section 4.1)

def position_encoding(lengths: torch.Tensor, max_len: int, d: int, dtype=torch.float32) -> torch.Tensor:
    """The position encoding l_kj = (1 - j/J) - (k/d)(1 - 2j/J) of sentences of J = ``lengths`` words.

    Args:
        lengths: (...) int, the number of words J of each sentence (0 for an empty one).
        max_len: L, the padded length of a sentence.
        d: the embedding size.

    Returns:
        (..., L, d): entry [..., j - 1, k - 1] is l_kj for word j <= J, and 0 beyond the sentence.
    """
    check_positive_int("max_len", max_len)
    check_positive_int("d", d)
    j = torch.arange(1, max_len + 1, device=lengths.device, dtype=dtype)[:, None]  # (L, 1)
    k = torch.arange(1, d + 1, device=lengths.device, dtype=dtype)  # (d,)
    J = lengths.to(dtype).clamp(min=1)[..., None, None]  # (..., 1, 1); an empty sentence has no words to weight
    l = (1 - j / J) - (k / d) * (1 - 2 * j / J)  # (..., L, d)
    return l * (j <= lengths[..., None, None])  # (..., L, d), zero past the J-th word


def word_weights(ids: torch.Tensor, d: int, position: bool = True, dtype=torch.float32) -> torch.Tensor:
    """The weights l_j of the words of sentences ``ids`` (..., L), padded with the nil id 0 at the end.

    Position encoding if ``position``, else bag of words (1 for every word); 0 for the padding.
    Returns (..., L, d).
    """
    real = ids != 0  # (..., L)
    if position:
        return position_encoding(real.sum(-1), ids.shape[-1], d, dtype)  # (..., L, d)
    return real[..., None].to(dtype).expand(*ids.shape, d)  # (..., L, d)


def recency(mask: torch.Tensor) -> torch.Tensor:
    """The age i of every slot for the temporal encoding: how many used slots come after it.

    mask (B, M) bool, True at the used slots, in story order. Returns (B, M) int64: 0 for the most
    recent sentence, 1 for the one before, ... (the paper's reverse order); an unused slot gets the
    age it would have, which nothing reads.
    """
    used = mask.long()
    return used.flip(1).cumsum(1).flip(1) - used  # (B, M): used slots at or after i, less slot i itself


# ----------------------------------------------------------------------------------------------
# Attention over memory: match and read (section 2.1)

def match(u: torch.Tensor, m: torch.Tensor, mask: torch.Tensor, softmax: bool = True) -> torch.Tensor:
    """The match p_i = softmax(uᵀ m_i) of a query with every memory slot.

    Args:
        u: (B, d) the controller's query.
        m: (B, M, d) the input memories.
        mask: (B, M) bool, True at the slots that hold something.
        softmax: ``False`` is linear start: the scores uᵀ m_i themselves.

    Returns:
        p (B, M): 0 at unused slots; with the softmax it sums to 1 over the used ones (all 0 when
        none is used, never NaN).
    """
    if not (isinstance(m, torch.Tensor) and m.dim() == 3 and isinstance(u, torch.Tensor) and
            tuple(u.shape) == (m.shape[0], m.shape[2])):
        raise ValueError(f"u must have shape (B, d) and m (B, M, d) with the same B and d, got u "
                         f"{tuple(getattr(u, 'shape', ()))} and m {tuple(getattr(m, 'shape', ()))}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(m.shape[:2]):
        raise ValueError(f"mask must be a bool tensor of shape (B, M) = {tuple(m.shape[:2])}, got "
                         f"{tuple(getattr(mask, 'shape', ()))} of {getattr(mask, 'dtype', type(mask).__name__)}")
    scores = torch.bmm(m, u[:, :, None]).squeeze(-1)  # (B, M): uᵀ m_i
    if not softmax:
        return scores.masked_fill(~mask, 0.0)
    # the dtype's lowest finite value, not -inf: a memory with no used slot gives 0s, not NaNs
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * mask  # (B, M)


def read(p: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The response o = Σ_i p_i c_i: p (B, M) weights, c (B, M, d) output memories -> (B, d)."""
    return torch.bmm(p[:, None, :], c).squeeze(1)  # (B, d)


# ----------------------------------------------------------------------------------------------
# The network

class MemN2NOutput(NamedTuple):
    """What ``MemN2N`` returns: the answer's logits (B, V), and p of every hop (B, K, M)."""

    logits: torch.Tensor
    attention: torch.Tensor


class _Story(NamedTuple):
    """A story as every hop of one forward reads it: ids (B, M, L), word weights l (B, M, L, d), ages
    (B, M), mask (B, M), and the memories computed so far, by table."""

    ids: torch.Tensor
    l: torch.Tensor
    age: torch.Tensor
    mask: torch.Tensor
    cache: dict


def _embedding(n: int, d: int, std: float) -> nn.Embedding:
    table = nn.Embedding(n, d)
    nn.init.normal_(table.weight, 0.0, std)  # the paper's N(0, 0.1); the nil row is never read
    return table


class MemN2N(nn.Module):
    """An end-to-end memory network with K hops over M sentences (Sukhbaatar et al. 2015).

    Args:
        vocab_size: V, the words of stories, questions and answers (id 0: nil).
        embedding_dim: d (the paper's 20 for single tasks).
        hops: K (the paper's 3).
        memory_size: M, the most sentences a story may have (the paper's 50); the temporal
            encoding has one row per age.
        tying: "adjacent" (A^{k+1} = C^k, W^T = C^K, B = A^1), "layerwise" (one A, one C for every
            hop, u^{k+1} = H u^k + o^k) or "none".
        position_encoding: PE (True) or bag of words (False).
        temporal_encoding: add T_A(i), T_C(i).
        init_std: the standard deviation of the Gaussian every weight starts from (0.1).

    ``model.linear_start = True`` leaves out the hops' softmax (linear start).

    Shape:
        stories (B, M', L) word ids with M' <= M, queries (B, L') word ids, mask (B, M') bool
        (default: the slots with a word) -> ``MemN2NOutput(logits (B, V), attention (B, K, M'))``.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 20, hops: int = 3, memory_size: int = 50, *,
                 tying: str = "adjacent", position_encoding: bool = True, temporal_encoding: bool = True,
                 init_std: float = 0.1):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim), ("hops", hops),
                            ("memory_size", memory_size)):
            check_positive_int(name, value)
        if tying not in TYINGS:
            raise ValueError(f"tying must be one of {TYINGS}, got {tying!r}")
        self.vocab_size, self.d, self.K, self.memory_size = vocab_size, embedding_dim, hops, memory_size
        self.tying, self.position_encoding, self.temporal_encoding = tying, position_encoding, temporal_encoding
        self.linear_start = False
        words = lambda: _embedding(vocab_size, embedding_dim, init_std)  # noqa: E731
        ages = lambda: _embedding(memory_size, embedding_dim, init_std)  # noqa: E731
        self.A, self.C = self._tie(words)  # A[k], C[k]: hop k's input and output embeddings, (V, d)
        self.T_A, self.T_C = self._tie(ages)  # hop k's temporal encodings, (M, d)
        if tying == "adjacent":
            self.B, self.W = self.A[0], self.C[-1]  # B = A^1, W^T = C^K: the same modules
        else:
            self.B, self.W = words(), words()  # W as a (V, d) table: logits = u Wᵀ either way
        self.H = nn.Linear(embedding_dim, embedding_dim, bias=False) if tying == "layerwise" else None
        if self.H is not None:
            nn.init.normal_(self.H.weight, 0.0, init_std)

    def _tie(self, make) -> tuple[nn.ModuleList, nn.ModuleList]:
        """Hop k's input and output tables under the model's tying: shared modules, not copies."""
        if self.tying == "adjacent":  # K + 1 tables E_0 ... E_K: A^k = E_{k-1}, C^k = E_k
            tables = [make() for _ in range(self.K + 1)]
            return nn.ModuleList(tables[:-1]), nn.ModuleList(tables[1:])
        if self.tying == "layerwise":  # one A and one C, every hop
            a, c = make(), make()
            return nn.ModuleList([a] * self.K), nn.ModuleList([c] * self.K)
        return nn.ModuleList(make() for _ in range(self.K)), nn.ModuleList(make() for _ in range(self.K))

    # -- one method per stage of the paper ------------------------------------------------------

    def embed(self, table: nn.Embedding, ids: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        """Σ_j l_j ⊙ table[x_j] for sentences ``ids`` (..., L) with word weights l (..., L, d): (..., d)."""
        return (l * table(ids)).sum(-2)  # (..., d)

    def weights(self, ids: torch.Tensor) -> torch.Tensor:
        """The word weights l_j of sentences ``ids`` (..., L): PE or bag of words, (..., L, d)."""
        return word_weights(ids, self.d, self.position_encoding, self.B.weight.dtype)

    def question(self, queries: torch.Tensor) -> torch.Tensor:
        """u^1 = Σ_j l_j ⊙ B q_j: (B, L') -> (B, d)."""
        return self.embed(self.B, queries, self.weights(queries))

    def memories(self, k: int, story: "_Story") -> tuple[torch.Tensor, torch.Tensor]:
        """Hop k's input memories m_i and output memories c_i (0-based k): (B, M, d) each."""
        return self._memory(self.A[k], self.T_A[k], story), self._memory(self.C[k], self.T_C[k], story)

    def _memory(self, table: nn.Embedding, T: nn.Embedding, story: "_Story") -> torch.Tensor:
        """Σ_j l_j ⊙ table[x_ij] + T(i), (B, M, d), computed once per tied table: under adjacent tying
        hop k + 1's input memory is hop k's output memory, under layer-wise tying every hop's is the same."""
        key = (id(table), id(T))
        if key not in story.cache:
            memory = self.embed(table, story.ids, story.l)  # (B, M, d)
            story.cache[key] = memory + T(story.age) if self.temporal_encoding else memory
        return story.cache[key]

    def update(self, u: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The next query: u^{k+1} = u^k + o^k, or H u^k + o^k under layer-wise tying. (B, d)."""
        return (u if self.H is None else self.H(u)) + o

    def hop(self, k: int, u: torch.Tensor, story: "_Story") -> tuple[torch.Tensor, torch.Tensor]:
        """One layer: match u^k with hop k's memory, read o^k, update. Returns (u^{k+1}, p^k (B, M))."""
        m, c = self.memories(k, story)
        p = match(u, m, story.mask, softmax=not self.linear_start)  # (B, M)
        return self.update(u, read(p, c)), p

    def answer(self, u: torch.Tensor) -> torch.Tensor:
        """The logits of â = softmax(W u^{K+1}): (B, d) -> (B, V)."""
        return u @ self.W.weight.T  # (B, V)

    def forward(self, stories: torch.Tensor, queries: torch.Tensor, mask: torch.Tensor | None = None) -> MemN2NOutput:
        stories, queries, mask = self._check(stories, queries, mask)
        # what every hop reads of the story, computed once: word weights and ages
        story = _Story(stories, self.weights(stories), recency(mask), mask, {})
        u, ps = self.question(queries), []
        for k in range(self.K):
            u, p = self.hop(k, u, story)
            ps.append(p)
        return MemN2NOutput(self.answer(u), torch.stack(ps, dim=1))  # (B, V), (B, K, M)

    def _check(self, stories, queries, mask):
        """The inputs, checked: integer ids, one B, at most ``memory_size`` slots, a bool mask."""
        dims = check_shape(stories, ("B", "M", "L"), "stories")
        check_shape(queries, (dims["B"], None), "queries")
        for name, x in (("stories", stories), ("queries", queries)):
            if x.dtype.is_floating_point or x.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer word ids, got dtype {x.dtype}")
        if self.temporal_encoding and dims["M"] > self.memory_size:
            raise ValueError(f"stories must have at most memory_size = {self.memory_size} slots, got {dims['M']}")
        if mask is None:
            mask = (stories != 0).any(-1)  # (B, M): the slots with a word
        check_shape(mask, (dims["B"], dims["M"]), "mask")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        return stories, queries, mask

    def extra_repr(self) -> str:
        return (f"V={self.vocab_size}, d={self.d}, K={self.K}, M={self.memory_size}, tying={self.tying!r}, "
                f"position_encoding={self.position_encoding}, temporal_encoding={self.temporal_encoding}")


# ----------------------------------------------------------------------------------------------
# Training (section 4.2): random noise, linear start

def _gen_device(generator: torch.Generator | None) -> torch.device:
    """Where a generator draws (then the draws move to the data): a seed gives the same noise everywhere."""
    return generator.device if generator is not None else torch.device("cpu")


def add_empty_memories(stories: torch.Tensor, mask: torch.Tensor, p: float = 0.1,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random noise (RN): an empty memory before each sentence with probability ``p``.

    An empty memory is a used slot without words: its memory vectors are the temporal encodings
    alone, and the sentences before it look one step older. The memory keeps its size M; when
    the insertions overflow it, the oldest slots go, as ``encode_stories`` drops the oldest sentences.

    Args:
        stories: (B, M, L) word ids, the used slots first (as ``encode_stories`` writes them).
        mask: (B, M) bool, True at the used slots.

    Returns:
        (stories, mask), both (B, M, ...) as given, on their device.
    """
    B, M, L = check_shape(stories, ("B", "M", "L"), "stories").values()
    check_shape(mask, (B, M), "mask")
    n = mask.sum(1)  # (B,) used slots
    if not torch.equal(mask, torch.arange(M, device=mask.device) < n[:, None]):
        raise ValueError("mask must mark the first slots of each story as used (the used slots first)")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    draw = torch.rand(B, M, generator=generator, device=_gen_device(generator)).to(mask.device)
    insert = (draw < p) & mask  # (B, M): an empty slot goes before sentence i
    overflow = (n + insert.sum(1) - M).clamp(min=0)  # (B,) oldest slots that no longer fit
    slot = torch.arange(M, device=mask.device) + insert.cumsum(1) - overflow[:, None]  # (B, M): sentence i's new slot
    keep = mask & (slot >= 0)
    b, i = keep.nonzero(as_tuple=True)
    out = torch.zeros_like(stories)  # (B, M, L)
    out[b, slot[b, i]] = stories[b, i]
    return out, torch.arange(M, device=mask.device) < (n + insert.sum(1) - overflow)[:, None]


def memn2n_loss(model: MemN2N, batch, reduction: str = "mean") -> tuple[torch.Tensor, dict]:
    """The cross-entropy of the answers, and their accuracy: ``batch`` is (stories, queries,
    answers, mask, ...) as a ``seqmem.tasks.BabiBatch`` holds them. ``reduction`` "mean" averages
    over the batch; "sum" adds it up (the paper's cost, "not averaged over a batch")."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    stories, queries, answers, mask = batch[:4]
    logits = model(stories, queries, mask).logits  # (B, V)
    accuracy = (logits.argmax(-1) == answers).float().mean().item()
    return F.cross_entropy(logits, answers, reduction=reduction), {"accuracy": accuracy}


def _clip_each(optimizer, args, kwargs) -> None:
    """An optimizer pre-step hook: every parameter's gradient clipped to norm ``optimizer.clip_each``
    on its own (the paper's QA setting: each weight matrix measured separately)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                torch.nn.utils.clip_grad_norm_([p], optimizer.clip_each)


def validation_loss(model: MemN2N, data) -> float:
    """The mean cross-entropy of ``model`` on ``data`` (a ``BabiBatch``), without gradients, in the
    model's current mode (with or without the softmax of linear start)."""
    with torch.no_grad():
        return memn2n_loss(model, data)[0].item()


def train_memn2n(model: MemN2N, data, *, epochs: int = 60, batch_size: int = 32, lr: float = 0.01,
                 optimizer: str = "adam", anneal_every: int | None = 15, linear_start_epochs: int = 0,
                 linear_start_lr: float | None = None, validation=None, random_noise: float = 0.0,
                 clip_grad_norm: float = 40.0, clip_each: bool = False, reduction: str = "mean",
                 recommence: bool = False, generator: torch.Generator | None = None,
                 progress: bool = False) -> History:
    """Train ``model`` on ``data`` (a ``BabiBatch`` of N stories) for ``epochs`` passes of minibatches.

    Adam (or ``optimizer="sgd"``, the paper's) with learning rate ``lr``, halved every
    ``anneal_every`` epochs (the paper: SGD at 0.01, halved every 25 of 100 epochs); the gradient's
    norm clipped to ``clip_grad_norm`` (40 in the paper), all parameters together, or each parameter
    on its own with ``clip_each=True`` (the paper's QA setting). ``reduction="sum"`` adds the loss
    up over a minibatch instead of averaging it (the paper's).

    Linear start (LS): the first epochs run without the hops' softmax, at ``linear_start_lr`` if given
    (the paper's 0.005) else at the schedule's rate. Without ``validation`` they are exactly
    ``linear_start_epochs``; with a ``validation`` ``BabiBatch`` the softmax comes back after the
    first LS epoch whose validation loss does not fall below the lowest so far (the paper's rule), or
    after ``linear_start_epochs`` at most. ``random_noise`` is the p of ``add_empty_memories`` for
    training batches (the paper's 0.1). ``generator`` draws the minibatches' order and the noise.

    ``recommence=True`` reads the paper's "the softmax layers were re-inserted and training
    recommenced" literally: the linear-start epochs come *before* the ``epochs`` of the schedule,
    which then starts again from its first epoch (rate ``lr``, halved every ``anneal_every``), so
    that ``history.linear_start_epochs + epochs`` epochs run in all. By default (``False``) the
    linear-start epochs are the schedule's first epochs, ``epochs`` in all.

    Returns:
        the history of every step; ``history.evals`` holds (step, validation loss) after every
        epoch when ``validation`` is given, and ``history.linear_start_epochs`` how many LS epochs ran.
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if linear_start_epochs < 0 or linear_start_epochs > epochs:
        raise ValueError(f"linear_start_epochs must be in [0, epochs = {epochs}], got {linear_start_epochs!r}")
    optimizer = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    if clip_each:
        optimizer.clip_each = clip_grad_norm
        optimizer.register_step_pre_hook(_clip_each)
    loss = (lambda m, b: memn2n_loss(m, b, reduction)) if reduction == "sum" else memn2n_loss
    history, N = History(), data[0].shape[0]
    model.linear_start, best, ls_epochs = linear_start_epochs > 0, float("inf"), 0
    epoch = 0
    while epoch < epochs:
        rate = lr * 0.5 ** (epoch // anneal_every if anneal_every else 0)
        for group in optimizer.param_groups:
            group["lr"] = linear_start_lr if model.linear_start and linear_start_lr is not None else rate
        order = torch.randperm(N, generator=generator, device=_gen_device(generator)).to(data[0].device)
        batches = [_minibatch(data, idx, random_noise, generator) for idx in order.split(batch_size)]
        part = fit(model, batches, loss, optimizer=optimizer, clip_grad_norm=None if clip_each else clip_grad_norm,
                   progress=progress)
        history.loss += part.loss
        for name, values in part.logs.items():
            history.logs.setdefault(name, []).extend(values)
        if model.linear_start:
            ls_epochs += 1
            stop = ls_epochs >= linear_start_epochs
            if validation is not None:
                value = validation_loss(model, validation)
                stop, best = stop or value >= best, min(best, value)
            model.linear_start = not stop
            epoch = -1 if recommence and stop else epoch  # the schedule starts again after linear start
        if validation is not None:
            history.evals.append((len(history.loss), validation_loss(model, validation)))
        epoch += 1
    model.linear_start = False
    history.linear_start_epochs = ls_epochs
    return history


def _minibatch(data, idx: torch.Tensor, noise: float, generator) -> tuple:
    """Stories ``idx`` of ``data``: (stories, queries, answers, mask), with RN's empty memories."""
    stories, queries, answers, mask = (t[idx] for t in data[:4])
    if noise > 0:
        stories, mask = add_empty_memories(stories, mask, noise, generator)
    used = max(1, int(mask.sum(1).max()))  # the batch's longest story: the slots after it are empty in every story
    return stories[:, :used], queries, answers, mask[:, :used]
