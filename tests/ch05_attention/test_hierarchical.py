"""seqmem.hierarchical (chapter 5): hierarchical attention networks (Yang et al. 2016).

Pinned here: the context attention's equations by hand on a small float64 case, and its gradients;
the whole network against Yang et al.'s equations written again one document and one sentence at
a time (each sentence read by the GRU on its own, no padding anywhere); the weights sum to 1 over
the real words and sentences and are 0 at the padding; more padding changes nothing; errors;
devices; and a network that learns the cue-sentence documents and attends to the cue.
"""
import pytest
import torch

import seqmem
from helpers import gen
from seqmem.hierarchical import ContextAttention, HierarchicalAttention, encode_padded
from seqmem.tasks import documents

V, C, E, H, A = 11, 3, 4, 3, 5


def _inputs(seed=0):
    """Two documents (B = 2, N = 3, L = 4): the first of 3 sentences of 4, 1, 2 words, the second of
    2 sentences of 3, 4 words and a padded one; the padding holds garbage ids, which must not count."""
    g = gen(seed)
    ids = torch.randint(1, V, (2, 3, 4), generator=g)
    lengths = torch.tensor([[4, 1, 2], [3, 4, 0]])
    return ids, lengths


def _model(seed=0):
    torch.manual_seed(seed)
    return HierarchicalAttention(V, C, E, H, A).double()


# ------------------------------------------------------------------ the equations, by hand

def context_attention_by_hand(att, h):
    """u_t = tanh(W h_t + b), alpha_t = exp(u_t . u) / sum_t' exp(u_t' . u), s = sum_t alpha_t h_t; h (T, D)."""
    u = [torch.tanh(att.W.weight @ h_t + att.W.bias) for h_t in h]
    e = torch.stack([torch.exp(u_t @ att.context) for u_t in u])
    alpha = e / e.sum()
    return sum(a * h_t for a, h_t in zip(alpha, h)), alpha


def test_context_attention_by_hand():
    torch.manual_seed(0)
    att = ContextAttention(3, 2).double()
    h = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen(1))
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    s, alpha = att(h, mask)
    for b in range(2):
        T = int(mask[b].sum())
        s_ref, alpha_ref = context_attention_by_hand(att, h[b, :T])
        torch.testing.assert_close(s[b], s_ref)
        torch.testing.assert_close(alpha[b, :T], alpha_ref)
        assert torch.all(alpha[b, T:] == 0)
    torch.testing.assert_close(alpha[1, 0], torch.tensor(1.0, dtype=torch.float64))  # one word: all the weight


def test_context_attention_gradients():
    """gradcheck in float64 through h, W, b and the context vector; a row with nothing to read as well."""
    torch.manual_seed(0)
    att = ContextAttention(3, 2).double()
    h = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen(2), requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])  # the second: nothing
    params = [p.detach().clone().requires_grad_() for p in (att.W.weight, att.W.bias, att.context)]

    def f(h_, W, b, u):
        return torch.func.functional_call(att, {"W.weight": W, "W.bias": b, "context": u}, (h_, mask))

    assert torch.autograd.gradcheck(f, (h, *params))
    s, alpha = att(h, mask)
    assert torch.all(s[1] == 0) and torch.all(alpha[1] == 0)  # an empty row reads nothing, and no NaN


def reference(model, ids, lengths):
    """Logits (B, C), word weights (B, N, L) and sentence weights (B, N) from Yang et al.'s equations:
    every sentence, then every document, read unpadded by the model's GRUs, the attention by hand."""
    B, N, L = ids.shape
    logits = []
    word_w = torch.zeros(B, N, L, dtype=torch.float64)
    sent_w = torch.zeros(B, N, dtype=torch.float64)
    for b in range(B):
        s = []
        for i in range(N):
            J = int(lengths[b, i])
            if J == 0:
                continue
            x = model.embedding(ids[b, i, :J])[None]  # (1, J, E)
            h_words = model.word_encoder(x)[0][0]  # h_it: (J, 2H)
            s_i, alpha = context_attention_by_hand(model.word_attention, h_words)
            s.append(s_i)
            word_w[b, i, :J] = alpha
        h_sent = model.sentence_encoder(torch.stack(s)[None])[0][0]  # h_i: (n, 2H)
        v, alpha = context_attention_by_hand(model.sentence_attention, h_sent)
        sent_w[b, :len(s)] = alpha
        logits.append(model.classifier.weight @ v + model.classifier.bias)  # W_c v + b_c
    return torch.stack(logits), word_w, sent_w


def test_forward_matches_the_equations():
    model = _model()
    ids, lengths = _inputs()
    out = model(ids, lengths)
    ref = reference(model, ids, lengths)
    assert out.logits.shape == (2, C) and out.word_weights.shape == (2, 3, 4) and out.sentence_weights.shape == (2, 3)
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want)


def test_weights_sum_to_one_and_padding_gets_zero():
    model = _model()
    ids, lengths = _inputs()
    out = model(ids, lengths)
    real_words = torch.arange(4) < lengths[..., None]  # (B, N, L)
    real_sentences = lengths > 0
    assert torch.all(out.word_weights[~real_words] == 0) and torch.all(out.sentence_weights[~real_sentences] == 0)
    torch.testing.assert_close(out.word_weights.sum(-1)[real_sentences], torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(out.sentence_weights.sum(-1), torch.ones(2, dtype=torch.float64))
    assert torch.all(out.word_weights[1, 2] == 0)  # the padded sentence: no weight on any word
    assert torch.all(out.word_weights >= 0)


def test_more_padding_changes_nothing():
    model = _model()
    ids, lengths = _inputs()
    out = model(ids, lengths)
    wider = torch.randint(1, V, (2, 5, 7), generator=gen(3))  # garbage everywhere
    wider[:, :3, :4] = ids
    more = torch.zeros(2, 5, dtype=torch.long)
    more[:, :3] = lengths
    out2 = model(wider, more)
    torch.testing.assert_close(out2.logits, out.logits)
    torch.testing.assert_close(out2.word_weights[:, :3, :4], out.word_weights)
    torch.testing.assert_close(out2.sentence_weights[:, :3], out.sentence_weights)
    assert torch.all(out2.word_weights[:, :, 4:] == 0) and torch.all(out2.sentence_weights[:, 3:] == 0)


def test_encode_padded_skips_empty_sequences():
    torch.manual_seed(0)
    layer = seqmem.GRU(2, 3, batch_first=True, bidirectional=True).double()
    x = torch.randn(3, 4, 2, dtype=torch.float64, generator=gen(4))
    out = encode_padded(layer, x, torch.tensor([2, 0, 4]))
    assert out.shape == (3, 4, 6) and torch.all(out[1] == 0) and torch.all(out[0, 2:] == 0)
    torch.testing.assert_close(out[0, :2], layer(x[:1, :2])[0][0])
    torch.testing.assert_close(out[2], layer(x[2:])[0][0])
    assert torch.all(encode_padded(layer, x, torch.zeros(3, dtype=torch.long)) == 0)


def test_gradients_reach_every_parameter():
    model = _model()
    ids, lengths = _inputs()
    model(ids, lengths).logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name != "embedding.weight":
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("call, message", [
    (lambda m, ids, n: m(ids[0], n), r"ids must have shape \(B, N, L\)"),
    (lambda m, ids, n: m(ids.float(), n), "ids must be an integer tensor"),
    (lambda m, ids, n: m(ids, n[:, :2]), r"lengths must have shape \(2, 3\)"),
    (lambda m, ids, n: m(ids, n.float()), "lengths must be an integer tensor"),
    (lambda m, ids, n: m(ids, n + 1), r"lengths must lie in \[0, L = 4\]"),
    (lambda m, ids, n: m(ids, n - 3), r"lengths must lie in \[0, L = 4\]"),
    (lambda m, ids, n: m(ids, torch.tensor([[4, 0, 2], [3, 4, 0]])), "real sentences .* must come first"),
    (lambda m, ids, n: m(ids, torch.tensor([[4, 1, 2], [0, 0, 0]])), "at least one sentence"),
    (lambda m, ids, n: ContextAttention(6, 0), "attention_size must be a positive int"),
    (lambda m, ids, n: m.word_attention(torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)),
     r"h must have shape \(B, T, 6\)"),
    (lambda m, ids, n: m.word_attention(torch.zeros(2, 3, 6), torch.ones(2, 4, dtype=torch.bool)),
     r"mask must have shape \(2, 3\)"),
])
def test_errors(call, message):
    ids, lengths = _inputs()
    with pytest.raises(ValueError, match=message):
        call(HierarchicalAttention(V, C, E, H, A), ids, lengths)


def test_on_device(dev):
    model = _model().to(dev)
    ids, lengths = _inputs()
    out = model(ids.to(dev), lengths.to(dev))
    ref = _model()(ids, lengths)
    assert out.logits.device.type == dev.type
    for got, want in zip(out, ref):
        torch.testing.assert_close(got.cpu(), want)


def _loss(model, batch):
    logits = model(batch.ids, batch.lengths).logits
    return torch.nn.functional.cross_entropy(logits, batch.labels)


def test_learns_the_cue_sentence_and_attends_to_it():
    """E = H = A = 16, 200 Adam steps (lr 1e-2) of 32 documents, seed 0: >= 95 % on 1,000 fresh
    documents (5 labels; always "none" scores 20 %), and on those with a cue >= 0.8 of the sentence
    weight on the cue sentence and >= 0.8 of the word weight on the cue word, in about 5 s."""
    g = seqmem.seed(0)
    model = HierarchicalAttention(len(documents.document_vocab()), len(documents.DOC_LABELS), 16, 16, 16)
    seqmem.fit(model, lambda i: documents.cue_documents(32, generator=g), _loss, steps=200, lr=1e-2, progress=False)
    test = documents.cue_documents(1000, generator=gen(1))
    with torch.no_grad():
        out = model(test.ids, test.lengths)
    accuracy = (out.logits.argmax(-1) == test.labels).float().mean()
    b = (test.cue >= 0).nonzero(as_tuple=True)[0]  # the documents with a cue
    on_cue = out.sentence_weights[b, test.cue[b]].mean()
    on_word = out.word_weights[b, test.cue[b], test.cue_word[b]].mean()
    assert accuracy >= 0.95 and on_cue >= 0.8 and on_word >= 0.8, (accuracy, on_cue, on_word)
