"""seqmem.memory_runs: the training and testing procedure of chapter 8's memory experiments.

Pinned here: a cell's logits are its unroll and a sequence model's are its call (a tensor or
``(logits, state)``), shapes checked; the loss and the scores are the tasks' cost and bit errors,
and a model of zero logits costs exactly one bit per recall bit and errs on every 1 bit;
``train_best`` ends with the parameters of its lowest validation cost (a training that turns bad
after its first validation gives them back), reports its curves at their steps, refuses a run
without a validation and a diverged one; ``scores_by_size`` scores each size's batch; and a short
training of an LSTM on short copies cuts its bit errors below a stated threshold.
"""
import pytest
import torch
from torch import nn

import seqmem
from seqmem import memory_runs, tasks

from helpers import gen


def _copies(B=8, lo=1, hi=3, n_bits=4, seed=0):
    return tasks.copy_sequences(B, lo, hi, n_bits, generator=gen(seed))


def _tagger(n_bits=4, hidden=16, seed=0):
    torch.manual_seed(seed)
    return seqmem.Tagger(seqmem.LSTM(n_bits + 1, hidden, batch_first=True), n_bits)


class _Zeros(nn.Module):
    """A sequence model whose logits are 0 everywhere (every probability 1/2), as a plain tensor."""

    def __init__(self, n_bits):
        super().__init__()
        self.n_bits, self.unused = n_bits, nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.new_zeros(*x.shape[:2], self.n_bits) + 0 * self.unused  # (B, T, O)


def test_logits_unroll_a_cell_and_call_a_sequence_model():
    batch = _copies()
    torch.manual_seed(0)
    cell = seqmem.NTMCell(5, 4, controller_size=8, memory_size=6, word_size=3)
    torch.testing.assert_close(memory_runs.logits(cell, batch.inputs), seqmem.unroll(cell, batch.inputs)[0])
    tagger = _tagger()
    ys = memory_runs.logits(tagger, batch.inputs)
    assert ys.shape == batch.targets.shape
    torch.testing.assert_close(ys, tagger(batch.inputs)[0])  # (logits, state): the logits
    assert torch.equal(memory_runs.logits(_Zeros(4), batch.inputs), torch.zeros_like(batch.targets))


def test_logits_say_what_shape_they_expected():
    with pytest.raises(ValueError, match=r"inputs must have shape \(B, T, I\), got \(3, 5\)"):
        memory_runs.logits(_tagger(), torch.zeros(3, 5))
    flat = lambda x: x.sum(1)  # noqa: E731  (B, I): not one output per step
    with pytest.raises(ValueError, match=r"must return logits \(B, T, O\)"):
        memory_runs.logits(flat, torch.zeros(2, 7, 5))


def test_loss_and_scores_are_the_tasks_cost_and_bit_errors():
    batch, model = _copies(), _tagger()
    with torch.no_grad():
        ys = model(batch.inputs)[0]
    loss, logs = memory_runs.memory_loss(model, batch)
    torch.testing.assert_close(loss, tasks.sequence_cost(ys, batch.targets, batch.mask, bits=False).mean())
    errors = tasks.bit_errors(ys, batch.targets, batch.mask).mean()
    assert logs["bit_errors"] == pytest.approx(float(errors))
    s = memory_runs.scores(model, batch)
    assert s["cost_bits"] == pytest.approx(float(tasks.sequence_cost(ys, batch.targets, batch.mask).mean()))
    assert s["bit_errors"] == pytest.approx(float(errors))
    per_episode = tasks.bit_errors(ys, batch.targets, batch.mask)
    assert s["perfect"] == pytest.approx(float((per_episode == 0).float().mean()))


def test_zero_logits_cost_one_bit_per_recall_bit_and_miss_every_one():
    batch = _copies(B=16, lo=2, hi=5)
    s = memory_runs.scores(_Zeros(4), batch)
    assert s["cost_bits"] == pytest.approx(float((batch.sizes * 4).float().mean()))  # L recall steps of 4 bits
    assert s["bit_errors"] == pytest.approx(float(batch.targets.sum((1, 2)).mean()))  # 0 is read as bit 0
    # zero logits read as all-zero bits: an episode whose targets are all zero is perfect
    half = batch._replace(targets=batch.targets * (torch.arange(16) % 2 == 0).float()[:, None, None])
    assert memory_runs.scores(_Zeros(4), half)["perfect"] == 0.5


def test_train_best_gives_back_the_parameters_of_the_lowest_validation_cost():
    """Seed 0: 10 Adam steps (lr 3e-2) on copy, then 10 on copies whose targets are flipped (the
    padding's too: the task's targets turn to 1 - targets), validated after each 10: the second
    validation is worse, and the model ends with the parameters of the first."""
    model, g, val = _tagger(), gen(1), _copies(B=64, seed=2)

    def batches(step):
        b = tasks.copy_sequences(16, 1, 3, 4, generator=g)
        return b if step < 10 else b._replace(targets=1 - b.targets)

    lines = []
    run = memory_runs.train_best(model, batches, val, steps=20, eval_every=10, clip_grad_norm=10.0,
                                 optimizer=torch.optim.Adam(model.parameters(), lr=3e-2), log=lines.append)
    first, second = (s["cost_bits"] for s in run.validation)
    assert second > first  # the flipped targets undid the copying
    assert run.best_step == 10 and [step for step, _ in run.history.evals] == [10, 20]
    assert memory_runs.scores(model, val)["cost_bits"] == pytest.approx(first)  # the first's parameters
    assert len(lines) == 2 and lines[0].startswith("step     10: validation cost")
    fields = run.fields(model, points=5)  # windows of 20 // 5 = 4 steps
    assert fields["val_steps"] == [10, 20] and fields["val_cost_bits"] == [first, second]
    assert fields["best_step"] == 10 and fields["train_steps"] == [4, 8, 12, 16, 20]
    assert fields["train_loss"][0] == pytest.approx(sum(run.history.loss[:4]) / 4)
    assert len(fields["train_bit_errors"]) == 5
    assert fields["parameters"] == sum(p.numel() for p in model.parameters())
    assert fields["steps_per_second"] > 0 and fields["train_seconds"] >= 0


def test_train_best_refuses_a_run_without_validation_or_with_only_nan():
    model, val = _tagger(), _copies()
    with pytest.raises(ValueError, match=r"eval_every \(30\) must be at most steps \(20\)"):
        memory_runs.train_best(model, lambda i: val, val, steps=20, eval_every=30,
                               optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="no validation cost was finite"):
        memory_runs.train_best(model, lambda i: val, val, steps=2, eval_every=1,
                               optimizer=torch.optim.SGD(model.parameters(), lr=0.0))


def test_scores_by_size_scores_each_sizes_batch():
    model = _tagger()
    batch_of = lambda L: tasks.copy_sequences(5, L, L, 4, generator=gen(100 + L))  # noqa: E731
    results = memory_runs.scores_by_size(model, batch_of, range(1, 4))
    assert list(results) == ["1", "2", "3"]
    for L in (1, 2, 3):
        assert results[str(L)] == memory_runs.scores(model, batch_of(L))


def test_a_short_training_of_an_lstm_on_copy_cuts_its_bit_errors():
    """Seed 0: an LSTM of 64 units, 600 Adam steps (lr 1e-2, gradients clipped to norm 10) on copies
    of 1-3 vectors of 4 bits, validated every 100 steps on 200 copies (seed 2): the kept parameters
    make at most 0.5 bit errors per sequence on 500 fresh copies (chance: 4 per sequence on average)."""
    model, g = _tagger(hidden=64), gen(1)
    memory_runs.train_best(model, lambda i: tasks.copy_sequences(16, 1, 3, 4, generator=g), _copies(200, seed=2),
                           steps=600, eval_every=100, clip_grad_norm=10.0,
                           optimizer=torch.optim.Adam(model.parameters(), lr=1e-2))
    assert memory_runs.scores(model, _copies(500, seed=3))["bit_errors"] <= 0.5


def test_sequences_to_converge_counts_episodes_to_the_first_good_validation():
    run = {"val_steps": [500, 1000, 1500, 2000], "val_bit_errors": [3.2, 0.4, 0.1, 0.0]}
    assert memory_runs.sequences_to_converge(run, 16) == 1500 * 16  # 0.1 is at the level
    assert memory_runs.sequences_to_converge(run, 16, level=0.05) == 2000 * 16
    assert memory_runs.sequences_to_converge(run, 1, level=0.01) == 2000
    assert memory_runs.sequences_to_converge({"val_steps": [500], "val_bit_errors": [2.0]}, 16) is None


@pytest.mark.parametrize("run, batch_size, match", [
    ({"val_steps": [500], "val_bit_errors": [0.0]}, 0, "batch_size must be a positive int, got 0"),
    ({"val_steps": [500, 1000], "val_bit_errors": [0.0]}, 16, "must have one length, got 2 and 1"),
    ({"val_bit_errors": [0.0]}, 16, "lists val_steps and val_bit_errors, got NoneType and list"),
])
def test_sequences_to_converge_refuses_what_is_not_a_run(run, batch_size, match):
    with pytest.raises(ValueError, match=match):
        memory_runs.sequences_to_converge(run, batch_size)


@pytest.mark.parametrize("level", [-0.1, float("nan"), "0.1", True])
def test_sequences_to_converge_refuses_a_level_that_is_not_a_count(level):
    run = {"val_steps": [500], "val_bit_errors": [0.0]}
    with pytest.raises(ValueError, match="level must be a number >= 0"):
        memory_runs.sequences_to_converge(run, 16, level=level)
