"""The warm-up ("Noam") learning-rate schedule (chapter 6): the paper's eq. (3) as a LambdaLR.

Pinned here: the rates an optimizer sees, step by step, are factor * d_model^-0.5 *
min(n^-0.5, n * warmup^-1.5) for n = 1, 2, ... times the base lr; linear warm-up to the peak at
n = warmup, then 1 / sqrt(n); several parameter groups; errors.
"""
import math
import warnings

import pytest
import torch

import seqmem


def _formula(n, d_model, warmup, factor=1.0):
    return factor * d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)


@pytest.mark.parametrize("d_model,warmup,factor,base", [(512, 4000, 1.0, 1.0), (16, 10, 2.0, 0.5)])
def test_the_optimizer_sees_the_papers_rates(d_model, warmup, factor, base):
    p = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.Adam([p], lr=base, betas=(0.9, 0.98), eps=1e-9)
    scheduler = seqmem.noam_schedule(optimizer, d_model, warmup, factor)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    for n in range(1, warmup + 50):  # across the peak
        assert math.isclose(optimizer.param_groups[0]["lr"], base * _formula(n, d_model, warmup, factor), rel_tol=1e-12)
        p.sum().backward()
        optimizer.step()  # the order torch asks for: optimizer, then scheduler
        scheduler.step()


def test_warm_up_then_inverse_square_root():
    lrate = seqmem.noam_lambda(64, warmup_steps=100)
    rates = [lrate(s) for s in range(400)]  # n = 1 ... 400
    peak = max(range(400), key=rates.__getitem__)
    assert peak == 99  # n = warmup
    assert math.isclose(rates[peak], (64 * 100) ** -0.5)
    for s in range(99):  # linear in n up to the peak
        assert math.isclose(rates[s], rates[0] * (s + 1))
    for s in range(100, 400):  # then proportional to 1 / sqrt(n)
        assert math.isclose(rates[s] * math.sqrt(s + 1), rates[peak] * math.sqrt(100))


def test_every_parameter_group_is_scaled_by_its_own_lr():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([dict(params=[a], lr=1.0), dict(params=[b], lr=0.1)])
    scheduler = seqmem.noam_schedule(optimizer, 16, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping the scheduler alone, without optimizer.step()
        for _ in range(7):
            scheduler.step()
    first, second = scheduler.get_last_lr()
    assert math.isclose(first, _formula(8, 16, 5)) and math.isclose(second, 0.1 * _formula(8, 16, 5))


def test_errors():
    for kwargs, match in [(dict(d_model=0), "d_model must be a positive int"),
                          (dict(d_model=8, warmup_steps=0), "warmup_steps must be a positive int"),
                          (dict(d_model=8, factor=0.0), "factor must be a positive number")]:
        with pytest.raises(ValueError, match=match):
            seqmem.noam_lambda(**kwargs)
