"""Algorithmic tasks: small problems that need memory, generated on the fly (chapters 1 and 2).

Each takes a ``torch.Generator`` (``None``: torch's global one) so that a seed fixes the data, and a
``device`` on which the tensors are returned. Data are drawn on the generator's device and then
moved, so the same seed gives the same data on every device. Shapes are batch first: x (B, T, I),
y as each task documents.

- The memory tasks: ``adding_problem`` (Hochreiter and Schmidhuber; Le et al.), ``copy_task``
  (Graves et al.), ``parity``, ``delayed_echo`` and its mirror ``future_tagging`` (a task for a
  bidirectional RNN).
- The shapes of sequence problems (chapter 1): ``number_to_bits`` (one to many) and
  ``collapse_runs`` (many to many, the output shorter).
- Sequence to sequence (chapter 4): ``copy_tokens`` and ``reverse_tokens`` return ``Pairs`` of
  letter strings of varying lengths (ids of ``symbol_vocab(n_symbols)``), the target ending
  with EOS.
- Adaptive computation time (chapter 9): ``parity_vectors``, the parity of a vector shown at once,
  whose difficulty varies from example to example.
"""
from __future__ import annotations

import functools
import string

import torch

from ..core import IGNORE_INDEX
from ..text import Pairs, Vocab, encode_pairs, seq2seq_vocab
from ._common import check_sizes, gen_device

__all__ = ["adding_problem", "copy_task", "parity", "delayed_echo", "future_tagging", "number_to_bits",
           "collapse_runs", "symbol_vocab", "copy_tokens", "reverse_tokens", "parity_vectors"]


def adding_problem(batch_size: int, T: int, generator: torch.Generator | None = None, device=None):
    """The adding problem (Hochreiter and Schmidhuber 1997; Le et al. 2015).

    Each step carries a value drawn from U(0, 1) and a marker; exactly two steps are marked, one in
    each half of the sequence. The target is the sum of the two marked values. Always answering 1
    (the target's mean) gives a mean squared error of 1/6 (the variance of a sum of two uniforms).

    Returns:
        x: (B, T, 2), ``x[..., 0]`` the values, ``x[..., 1]`` the markers (0 or 1).
        y: (B, 1), the sum of the two marked values.
    """
    check_sizes(batch_size=batch_size, T=T)
    if T < 2:
        raise ValueError(f"adding_problem needs T >= 2 to mark two steps, got T={T}")
    gdev = gen_device(generator)
    values = torch.rand(batch_size, T, generator=generator, device=gdev)
    half = T // 2
    first = torch.randint(0, half, (batch_size,), generator=generator, device=gdev)
    second = torch.randint(half, T, (batch_size,), generator=generator, device=gdev)
    markers = torch.zeros(batch_size, T, device=gdev)
    rows = torch.arange(batch_size, device=gdev)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    y = (values * markers).sum(dim=1, keepdim=True)  # (B, 1)
    return x.to(device or gdev), y.to(device or gdev)


def copy_task(batch_size: int, T: int, n_symbols: int = 8, generator=None, device=None):
    """Read a sequence of symbols, then write it back after a delimiter (Graves et al. 2014).

    The input has ``n_symbols + 1`` channels: one-hot symbols, and a delimiter channel that is 1 at
    step T only. The model sees 2T + 1 steps: T symbols, the delimiter, then T blank steps during
    which it must reproduce the symbols.

    Returns:
        x: (B, 2T + 1, n_symbols + 1) float inputs.
        y: (B, T) int64 symbols to be produced at steps T + 1, ..., 2T.
    """
    check_sizes(batch_size=batch_size, T=T, n_symbols=n_symbols)
    gdev = gen_device(generator)
    y = torch.randint(0, n_symbols, (batch_size, T), generator=generator, device=gdev)
    x = torch.zeros(batch_size, 2 * T + 1, n_symbols + 1, device=gdev)
    x[:, :T, :n_symbols] = torch.nn.functional.one_hot(y, n_symbols).float()
    x[:, T, n_symbols] = 1.0  # the delimiter
    return x.to(device or gdev), y.to(device or gdev)


def parity(batch_size: int, T: int, generator=None, device=None):
    """Running parity of a bit string: at each step, is the number of ones so far odd?

    The smallest task whose answer depends on the whole past; a one-unit memory suffices.

    Returns:
        x: (B, T, 1) bits as floats.
        y: (B, T) int64, ``y[:, t]`` = (x[:, 0] + ... + x[:, t]) mod 2.
    """
    check_sizes(batch_size=batch_size, T=T)
    gdev = gen_device(generator)
    bits = torch.randint(0, 2, (batch_size, T), generator=generator, device=gdev)
    y = bits.cumsum(dim=1) % 2
    return bits.unsqueeze(-1).float().to(device or gdev), y.to(device or gdev)


def parity_vectors(batch_size: int, n_bits: int = 16, generator=None, device=None):
    """The parity task of Graves (2016, section 3.1): is the number of +1 entries of a vector odd?

    Each vector has ``n_bits`` entries; a number k of them, uniform in 1 ... n_bits, are +1 or -1
    (each by a fair coin), at random places, and the others 0. The vector is shown in one time
    step, so a network can spend no more steps on a hard example (large k) than on an easy one,
    unless it ponders (``seqmem.act``).

    Returns:
        x: (B, 1, n_bits) floats in {-1, 0, 1}, one time step.
        y: (B,) int64, 1 where the number of +1 entries is odd.
        k: (B,) int64, the number of non-zero entries.
    """
    check_sizes(batch_size=batch_size, n_bits=n_bits)
    gdev = gen_device(generator)
    B = batch_size
    k = torch.randint(1, n_bits + 1, (B,), generator=generator, device=gdev)  # (B,)
    places = torch.rand(B, n_bits, generator=generator, device=gdev).argsort(dim=1)  # (B, n_bits)
    chosen = places < k.unsqueeze(1)  # (B, n_bits): k random places per row
    signs = torch.randint(0, 2, (B, n_bits), generator=generator, device=gdev) * 2 - 1  # +-1
    x = (signs * chosen).float()  # (B, n_bits)
    y = (x == 1).sum(dim=1) % 2
    out = device or gdev
    return x.unsqueeze(1).to(out), y.to(out), k.to(out)


def delayed_echo(batch_size: int, T: int, delay: int = 3, n_symbols: int = 4, generator=None, device=None):
    """Output at step t the symbol that came in at step t - delay (the first ``delay`` targets are 0).

    A memory of fixed depth: the model must keep the last ``delay`` symbols in its state.

    Returns:
        x: (B, T, n_symbols) one-hot inputs.
        y: (B, T) int64 targets.
    """
    check_sizes(batch_size=batch_size, T=T, n_symbols=n_symbols)
    if not isinstance(delay, int) or delay < 0 or delay >= T:
        raise ValueError(f"delay must be an int in [0, T), got {delay!r} with T={T}")
    gdev = gen_device(generator)
    s = torch.randint(0, n_symbols, (batch_size, T), generator=generator, device=gdev)
    x = torch.nn.functional.one_hot(s, n_symbols).float()  # (B, T, n_symbols)
    y = torch.zeros_like(s)
    y[:, delay:] = s[:, : T - delay]
    return x.to(device or gdev), y.to(device or gdev)


def future_tagging(batch_size: int, T: int, k: int = 2, n_symbols: int = 4, generator=None, device=None):
    """Tag each step with the symbol that comes k steps LATER: a task for a bidirectional RNN.

    Symbols are drawn independently and uniformly; the label of step t is the symbol at step t + k,
    the mirror image of ``delayed_echo``. A left-to-right RNN has seen only steps 0..t at step t, all
    independent of the label, so no amount of training lifts it above chance, 1 / n_symbols
    (0.25 by default). A bidirectional RNN's backward direction has read step t + k when it reaches
    step t and needs to hold it for only k steps, so it can tag every step correctly.

    The last k steps have nothing k steps after them: their label is ``IGNORE_INDEX`` (-100), which
    ``cross_entropy`` skips by default; mask them out of accuracies.

    Returns:
        x: (B, T, n_symbols) one-hot inputs.
        y: (B, T) int64 labels, ``y[:, t] = argmax x[:, t + k]`` for t < T - k, IGNORE_INDEX after.
    """
    check_sizes(batch_size=batch_size, T=T, n_symbols=n_symbols)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < T:
        raise ValueError(f"k must be an int in [1, T), got {k!r} with T={T}")
    gdev = gen_device(generator)
    s = torch.randint(0, n_symbols, (batch_size, T), generator=generator, device=gdev)
    x = torch.nn.functional.one_hot(s, n_symbols).float()  # (B, T, n_symbols)
    y = torch.full_like(s, IGNORE_INDEX)
    y[:, : T - k] = s[:, k:]  # the label of step t is the symbol of step t + k
    return x.to(device or gdev), y.to(device or gdev)


# ----------------------------------------------------------------------------------------------
# The shapes of sequence problems (chapter 1): one to many, many to many of different lengths


def number_to_bits(batch_size: int, n_bits: int = 4, generator=None, device=None):
    """One to many: read a number once, then write its binary digits, most significant first.

    The number n, uniform in [0, 2^n_bits), arrives one-hot at step 0; the later inputs are zero,
    so the network must keep n in its state while it writes one bit per step.

    Returns:
        x: (B, n_bits, 2^n_bits) float, ``x[:, 0]`` one-hot n, zeros after.
        y: (B, n_bits) int64, ``y[:, t]`` = bit n_bits - 1 - t of n.
    """
    check_sizes(batch_size=batch_size, n_bits=n_bits)
    gdev = gen_device(generator)
    n = torch.randint(0, 2 ** n_bits, (batch_size,), generator=generator, device=gdev)
    x = torch.zeros(batch_size, n_bits, 2 ** n_bits, device=gdev)
    x[:, 0] = torch.nn.functional.one_hot(n, 2 ** n_bits).float()
    powers = 2 ** torch.arange(n_bits - 1, -1, -1, device=gdev)  # (n_bits,): 8, 4, 2, 1
    y = (n[:, None] // powers) % 2  # (B, n_bits)
    return x.to(device or gdev), y.to(device or gdev)


def collapse_runs(batch_size: int, n_runs: int = 3, max_run: int = 3, n_symbols: int = 4,
                  generator=None, device=None):
    """Many to many, output shorter: read runs of repeated symbols, then write one symbol per run.

    The lecture's speech recogniser in miniature: frames "a a a b b c" become the text "a b c". Each
    input holds ``n_runs`` runs, each of 1 to ``max_run`` repeats of a symbol, neighbours different;
    so the input's length varies from n_runs to n_runs * max_run steps, and the input window is
    filled up with silent (all-zero) steps. Then come ``n_runs`` steps with the "write" channel
    (the last) on, at which the model must give the runs' symbols in order.

    Returns:
        x: (B, n_runs * max_run + n_runs, n_symbols + 1) float inputs.
        y: (B, n_runs) int64, the runs' symbols: the targets of the last n_runs steps.
    """
    check_sizes(batch_size=batch_size, n_runs=n_runs, max_run=max_run, n_symbols=n_symbols)
    if n_symbols < 2 and n_runs > 1:
        raise ValueError(f"neighbouring runs differ, so n_runs > 1 needs n_symbols >= 2, got {n_symbols}")
    gdev = gen_device(generator)
    first = torch.randint(0, n_symbols, (batch_size, 1), generator=generator, device=gdev)
    shifts = torch.randint(1, max(n_symbols, 2), (batch_size, n_runs - 1), generator=generator, device=gdev)
    symbols = torch.cat([first, first + shifts.cumsum(1)], 1) % n_symbols  # (B, n_runs), neighbours differ
    lengths = torch.randint(1, max_run + 1, (batch_size, n_runs), generator=generator, device=gdev)
    T_in = n_runs * max_run
    ends = lengths.cumsum(1)  # (B, n_runs): where each run stops
    run = (torch.arange(T_in, device=gdev)[None, :, None] >= ends[:, None, :]).sum(-1)  # (B, T_in)
    frames = symbols.gather(1, run.clamp(max=n_runs - 1))  # (B, T_in): the symbol of step t's run
    x = torch.zeros(batch_size, T_in + n_runs, n_symbols + 1, device=gdev)
    x[:, :T_in, :n_symbols] = torch.nn.functional.one_hot(frames, n_symbols).float() * (run < n_runs)[..., None]
    x[:, T_in:, n_symbols] = 1.0  # "write now"
    return x.to(device or gdev), symbols.to(device or gdev)


# ----------------------------------------------------------------------------------------------
# Sequence to sequence (chapter 4): a source of any length in, a target of its own length out


@functools.lru_cache(maxsize=None)
def symbol_vocab(n_symbols: int = 10) -> Vocab:
    """The vocabulary of ``copy_tokens`` and ``reverse_tokens``: PAD, BOS, EOS, then the letters
    "a", "b", ... (``n_symbols`` of them, at most 26), so symbol k has id k + 3."""
    check_sizes(n_symbols=n_symbols)
    if n_symbols > 26:
        raise ValueError(f"symbols are the letters a-z, so n_symbols must be at most 26, got {n_symbols}")
    return seq2seq_vocab(string.ascii_lowercase[:n_symbols])


def _symbol_pairs(batch_size: int, length: tuple[int, int], n_symbols: int, generator, device,
                  reverse: bool) -> Pairs:
    """B random letter strings of lengths in [lo, hi], paired with themselves or their reverse."""
    check_sizes(batch_size=batch_size)
    vocab = symbol_vocab(n_symbols)
    lo, hi = length
    if not isinstance(lo, int) or not isinstance(hi, int) or not 1 <= lo <= hi:
        raise ValueError(f"length must be a pair of ints (lo, hi) with 1 <= lo <= hi, got {length!r}")
    gdev = gen_device(generator)
    lengths = torch.randint(lo, hi + 1, (batch_size,), generator=generator, device=gdev).tolist()  # (B,)
    symbols = torch.randint(n_symbols, (batch_size, hi), generator=generator, device=gdev).tolist()  # (B, hi)
    sources = ["".join(string.ascii_lowercase[k] for k in row[:n]) for row, n in zip(symbols, lengths)]
    targets = [s[::-1] if reverse else s for s in sources]
    return encode_pairs(list(zip(sources, targets)), vocab, vocab, sources, targets, device or gdev)


def copy_tokens(batch_size: int, length: tuple[int, int] = (1, 10), n_symbols: int = 10,
                generator: torch.Generator | None = None, device=None) -> Pairs:
    """Copy, as sequence to sequence: read a string of letters, write it again, then EOS.

    The smallest check that an encoder-decoder works at all (the Annotated Transformer's first
    task). Lengths are uniform in [length[0], length[1]], letters uniform among the first
    ``n_symbols`` of a-z; tokens are ids of ``symbol_vocab(n_symbols)``, texts the letter strings
    ("cab").

    Returns:
        ``Pairs``: source (B, S), S = the longest length; target (B, S + 1), the source and EOS.
    """
    return _symbol_pairs(batch_size, length, n_symbols, generator, device, reverse=False)


def reverse_tokens(batch_size: int, length: tuple[int, int] = (1, 10), n_symbols: int = 10,
                   generator: torch.Generator | None = None, device=None) -> Pairs:
    """Reverse a string of letters: source "cab", target "bac" and EOS.

    The mirror of ``copy_tokens``: the first target token is the source token read last, so the
    first steps of decoding lean on what the encoder saw most recently, where in copying they lean
    on what it saw first (Sutskever et al. 2014 reversed their source sentences for this reason).
    Drawn and encoded as ``copy_tokens`` (the same seed gives the same sources).

    Returns:
        ``Pairs``: source (B, S); target (B, S + 1), the reversed source and EOS.
    """
    return _symbol_pairs(batch_size, length, n_symbols, generator, device, reverse=True)
