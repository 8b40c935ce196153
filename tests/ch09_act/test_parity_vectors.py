"""seqmem.tasks.parity_vectors: Graves's (2016) parity of a vector shown at once (chapter 9)."""
import pytest
import torch

from seqmem import tasks

from conftest import DEVICES
from helpers import gen


def test_vectors_have_k_signed_entries_and_the_parity_of_their_ones():
    x, y, k = tasks.parity_vectors(2000, 16, generator=gen(0))
    assert x.shape == (2000, 1, 16) and y.shape == k.shape == (2000,)
    v = x[:, 0]
    assert set(v.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal((v != 0).sum(1), k)
    assert torch.equal((v == 1).sum(1) % 2, y)
    assert k.min() == 1 and k.max() == 16  # k uniform in 1 ... 16: both ends drawn in 2000
    counts = torch.bincount(k, minlength=17)[1:].float()
    assert counts.min() > 0.5 * counts.mean()  # roughly uniform
    assert 0.45 < y.float().mean() < 0.55  # the two classes balanced
    minus = (v == -1).sum() / (v != 0).sum()
    assert 0.45 < minus < 0.55  # the signs are fair coins
    places = (v != 0).float().mean(0)  # every place used about equally
    assert places.min() > 0.8 * places.mean()


@pytest.mark.parametrize("dev", DEVICES)
def test_a_seed_fixes_the_data_on_every_device(dev):
    a = tasks.parity_vectors(32, 8, generator=gen(3), device=dev)
    b = tasks.parity_vectors(32, 8, generator=gen(3))
    for u, w in zip(a, b):
        assert u.device.type == dev and torch.equal(u.cpu(), w)


def test_bad_sizes_say_what_was_expected():
    with pytest.raises(ValueError, match="n_bits"):
        tasks.parity_vectors(4, 0)
    with pytest.raises(ValueError, match="batch_size"):
        tasks.parity_vectors(0, 8)
