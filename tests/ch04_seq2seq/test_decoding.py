"""seqmem.decoding (chapter 4): greedy and beam search on any model with start/step.

Pinned here: one beam step by hand; beam size 1 is greedy (untrained and trained models); a beam
wide enough to keep every hypothesis finds the best of all sequences up to max_len, enumerated by
brute force, for alpha = 0 (most probable) and alpha > 0 (length-normalised); a hand-built model
on which greedy fails and beam search does not; eos ends hypotheses and is not returned; max_len;
a batch is each sample alone; errors.
"""
import itertools
import math

import pytest
import torch

import seqmem
from s2s_tasks import V, exact_match, gru_seq2seq, reversal, trained_reversal

EOS = 2
NEG_INF = float("-inf")


def test_beam_step_by_hand():
    scores = torch.tensor([[-1.0, -2.0]])  # (B=1, K=2)
    log_probs = torch.log(torch.tensor([[[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]]]))  # (1, 2, V=3), eos = 2
    step = seqmem.beam_step(scores, log_probs, k=3, eos_id=2)
    # extensions: beam 0: -1.69, -2.20, -2.61 (eos); beam 1: -2.11, -5.00, -5.00 (eos)
    torch.testing.assert_close(step.parents, torch.tensor([[0, 1, 0]]))
    torch.testing.assert_close(step.tokens, torch.tensor([[0, 0, 1]]))
    expected = scores[0, [0, 1, 0]] + torch.log(torch.tensor([0.5, 0.9, 0.3]))
    torch.testing.assert_close(step.live, expected[None])
    assert (step.finished == NEG_INF).all()
    ends = seqmem.beam_step(scores, log_probs, k=4, eos_id=2)  # the 4th best ends with eos: finished
    assert ends.tokens[0, 3] == 2 and ends.live[0, 3] == NEG_INF
    assert ends.finished[0, 3].item() == pytest.approx(-1 + math.log(0.2))
    empty = seqmem.beam_step(torch.tensor([[0.0, NEG_INF]]), log_probs, k=6)  # beam 1 is an empty slot
    torch.testing.assert_close(empty.live[0, :2], torch.log(torch.tensor([0.5, 0.3])))
    assert empty.finished[0, 2].item() == pytest.approx(math.log(0.2))
    assert (empty.live[0, 2:] == NEG_INF).all() and (empty.finished[0, 3:] == NEG_INF).all()


def _sources(seed, B=5):
    source, _ = reversal(torch.Generator().manual_seed(seed), B)
    return source


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_of_one_is_greedy_on_untrained_models(seed, alpha):
    model = gru_seq2seq(seed).eval()
    with torch.no_grad():  # make <eos> likely enough that some hypotheses end before max_len
        model.decoder.out.bias[EOS] += 2.0 + seed
    source = _sources(seed)
    out = seqmem.greedy(model, source.ids, source.lengths, 8)
    assert out == seqmem.beam_search(model, source.ids, source.lengths, 1, 8, alpha=alpha)
    assert any(len(o) < 8 for o in out)  # some hypotheses ended with eos


def test_beam_of_one_is_greedy_on_a_trained_model():
    model = trained_reversal(0)
    for seed in (1, 2, 3):
        source = _sources(seed, B=50)
        assert seqmem.greedy(model, source.ids, source.lengths, 10) == seqmem.beam_search(
            model, source.ids, source.lengths, 1, 10)


def test_beam_search_on_the_trained_model_reverses_and_drops_eos():
    model = trained_reversal(0)
    assert exact_match(model, decode=lambda m, ids, lengths: seqmem.beam_search(m, ids, lengths, 3, 10)) >= 0.9
    source = _sources(4, B=20)
    for pool in seqmem.beam_hypotheses(model, source.ids, source.lengths, 3, 10):
        assert len(pool) == 3 and [h.score for h in pool] == sorted((h.score for h in pool), reverse=True)
        assert all(h.finished and EOS not in h.tokens for h in pool)


# -- a beam wide enough to keep everything is exhaustive search ---------------------------------------

TINY_V, MAX_LEN = 5, 4  # tokens 0..4, eos = 2: four non-eos tokens per step


def _tiny_model(seed):
    """A random tiny GRU seq2seq over 5 tokens, float64, its outputs made peaky enough to differ."""
    torch.manual_seed(seed)
    encoder = seqmem.Encoder(TINY_V, 3, seqmem.GRU(3, 4, batch_first=True))
    decoder = seqmem.Decoder(TINY_V, 3, seqmem.GRUCell(3, 4), context_size=4)
    with torch.no_grad():
        decoder.out.weight.mul_(4.0)
    return seqmem.Seq2Seq(encoder, decoder).double().eval()


def _every_hypothesis(model, source_ids, alpha):
    """Brute force: (score, log p, tokens) of every output up to MAX_LEN tokens: those ending with
    eos, and those of MAX_LEN tokens without it, each scored by one teacher-forced pass."""
    others = [t for t in range(TINY_V) if t != EOS]
    outputs = [(list(p) + [EOS], True) for n in range(MAX_LEN) for p in itertools.product(others, repeat=n)]
    outputs += [(list(p), False) for p in itertools.product(others, repeat=MAX_LEN)]
    found = []
    for tokens, finished in outputs:
        target = torch.tensor([tokens])
        with torch.no_grad():
            log_p = model(source_ids, None, target).log_softmax(-1).gather(-1, target[..., None]).sum().item()
        found.append((log_p / len(tokens) ** alpha, log_p, tokens[:-1] if finished else tokens))
    return sorted(found, key=lambda h: -h[0])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_a_wide_beam_finds_what_brute_force_finds(seed, alpha):
    """341 outputs up to 4 tokens; a beam of 400 keeps every one, so its ranking is brute force's:
    with alpha = 0 the most probable output, with alpha > 0 the best length-normalised one."""
    model = _tiny_model(seed)
    source_ids = torch.tensor([[3, 4, 1]])
    every = _every_hypothesis(model, source_ids, alpha)
    assert len(every) == 341
    pool = seqmem.beam_hypotheses(model, source_ids, None, 400, MAX_LEN, alpha=alpha)[0]
    assert len(pool) == 341
    assert pool[0].tokens == every[0][2]
    torch.testing.assert_close(torch.tensor([h.score for h in pool]), torch.tensor([h[0] for h in every]))
    torch.testing.assert_close(pool[0].log_prob, every[0][1])
    if alpha == 0:
        assert pool[0].log_prob == max(h.log_prob for h in pool)


def test_length_normalisation_changes_the_winner():
    """Some tiny model prefers a short output by log p and a longer one by log p / len."""
    for seed in range(20):
        model = _tiny_model(seed)
        source_ids = torch.tensor([[3, 4, 1]])
        plain = seqmem.beam_search(model, source_ids, None, 400, MAX_LEN, alpha=0.0)[0]
        normalised = seqmem.beam_search(model, source_ids, None, 400, MAX_LEN, alpha=1.0)[0]
        if len(normalised) > len(plain):
            return
    pytest.fail("no seed of 20 where alpha=1 prefers a longer output than alpha=0")


# -- a model where greedy fails --------------------------------------------------------------------

class Markov:
    """A hand-built model with the decoding protocol: the next token depends on the previous one only.

    ``rows[prev] = {token: p}``; every other entry is 1e-9. Tokens: 1 <bos>, 2 <eos>, 3, 4.
    """

    def __init__(self, rows):
        self.table = torch.full((5, 5), 1e-9, dtype=torch.float64)  # (V, V): p(next | prev)
        for prev, row in rows.items():
            for token, p in row.items():
                self.table[prev, token] = p

    def start(self, source_ids, lengths):
        return torch.zeros(source_ids.shape[0], dtype=torch.long)  # the state: the previous token

    def step(self, state, tokens):
        return tokens, self.table[tokens].log()  # (B, V)


def garden_path():
    """After <bos>: a (3) 0.55, b (4) 0.45. After a: a 0.34, b 0.33, eos 0.33. After b: eos 0.95.
    Greedy takes a and never recovers (any continuation of a has p <= 0.55 * 0.34 = 0.19);
    "b <eos>" has p = 0.45 * 0.95 = 0.43."""
    return Markov({1: {3: 0.55, 4: 0.45}, 3: {3: 0.34, 4: 0.33, 2: 0.33}, 4: {2: 0.95, 3: 0.05}})


def test_beam_search_finds_the_sequence_greedy_misses():
    model, source = garden_path(), torch.zeros(1, 1, dtype=torch.long)
    assert seqmem.greedy(model, source, None, 5) == [[3, 3, 3, 3, 3]]  # a a a a a: max_len stopped it
    pool = seqmem.beam_hypotheses(model, source, None, 2, 5)[0]
    assert pool[0].tokens == [4] and pool[0].finished
    torch.testing.assert_close(pool[0].log_prob, math.log(0.45 * 0.95))
    assert pool[0].log_prob > math.log(0.55 * 0.34 ** 4)  # greedy's own probability
    assert seqmem.beam_search(model, source, None, 1, 5) == [[3, 3, 3, 3, 3]]


def test_search_goes_on_while_a_live_beam_can_beat_a_finished_one():
    """K = 2. Step 1 finishes "<eos>" (0.28) and keeps a (0.5); step 2 finishes "a <eos>" (0.2) and
    keeps "a b" (0.3): two finished, but the live beam is better than the worse of them, and at
    step 3 it finishes as "a b <eos>" (0.3), the best of all."""
    model = Markov({1: {3: 0.5, 2: 0.28, 4: 0.22}, 3: {2: 0.4, 4: 0.6}, 4: {2: 1.0}})
    pool = seqmem.beam_hypotheses(model, torch.zeros(1, 1, dtype=torch.long), None, 2, 6)[0]
    assert [h.tokens for h in pool] == [[3, 4], []]
    torch.testing.assert_close([h.log_prob for h in pool], [math.log(0.3), math.log(0.28)])


def test_max_len_bounds_every_output():
    model, source = garden_path(), torch.zeros(1, 1, dtype=torch.long)
    short = seqmem.beam_hypotheses(model, source, None, 1, 3)[0]
    assert short[0].tokens == [3, 3, 3] and not short[0].finished  # 3 steps, no eos
    model = gru_seq2seq(0).eval()
    source = _sources(0)
    for n in (1, 3):
        assert all(len(o) <= n for o in seqmem.greedy(model, source.ids, source.lengths, n))
        assert all(len(h.tokens) <= n for pool in seqmem.beam_hypotheses(model, source.ids, source.lengths, 3, n)
                   for h in pool)


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_a_batch_decodes_as_each_sample_alone(alpha):
    torch.manual_seed(0)
    model = gru_seq2seq(3, bidirectional=True).double().eval()
    with torch.no_grad():
        model.decoder.out.bias[EOS] += 2.0
    source = _sources(5, B=4)
    batch = seqmem.beam_hypotheses(model, source.ids, source.lengths, 3, 7, alpha=alpha)
    greedy = seqmem.greedy(model, source.ids, source.lengths, 7)
    for b, n in enumerate(source.lengths.tolist()):
        alone = seqmem.beam_hypotheses(model, source.ids[b:b + 1, :n], None, 3, 7, alpha=alpha)[0]
        assert [h.tokens for h in batch[b]] == [h.tokens for h in alone]
        torch.testing.assert_close([h.score for h in batch[b]], [h.score for h in alone])
        assert greedy[b] == seqmem.greedy(model, source.ids[b:b + 1, :n], None, 7)[0]


@pytest.mark.parametrize("call,match", [
    (lambda m, s: seqmem.beam_search(m, s, None, 0, 5), "beam_size must be a positive int"),
    (lambda m, s: seqmem.beam_search(m, s, None, 2, 0), "max_len must be a positive int"),
    (lambda m, s: seqmem.beam_search(m, s, None, 2, 5, alpha=-1), "alpha must be at least 0"),
    (lambda m, s: seqmem.greedy(m, s, None, 0), "max_len must be a positive int"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(garden_path(), torch.zeros(1, 1, dtype=torch.long))
