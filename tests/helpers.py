"""What many test files share: seeded generators, float64 leaves, a torch layer paired with ours, and
a small learning task whose chance level is known."""
import torch

import seqmem

#: The layer configurations every drop-in is compared with torch on.
LAYER_CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(num_layers=2, bias=False),
]


def gen(seed=0):
    """A CPU generator seeded with ``seed``: the data of a test, whatever ran before it."""
    return torch.Generator().manual_seed(seed)


def grads(module, *tensors):
    """The gradients of every parameter of ``module``, then of ``tensors``."""
    return [p.grad for p in module.parameters()] + [t.grad for t in tensors]


def randn(g, *shape, dev="cpu"):
    """A float64 leaf drawn from ``g`` on ``dev``, requiring its gradient."""
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dev).requires_grad_()


def torch_pair(torch_layer, our_layer, input_size, hidden_size, cfg, dev, fused):
    """torch's layer and ours, float64 on ``dev``, ours loaded from torch's state dict."""
    torch.manual_seed(0)
    ref = torch_layer(input_size, hidden_size, **cfg).to(dev, torch.float64)
    ours = our_layer(input_size, hidden_size, fused=fused, **cfg).to(dev, torch.float64)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def echo_accuracy(make_layer, steps: int, seed: int = 0, T: int = 8, delay: int = 2, lr: float = 1e-2) -> float:
    """Train ``Tagger(make_layer(4, 16), 4)`` on delayed echo (4 symbols) and score it after the delay.

    ``seed`` fixes the weights and the training batches (32 sequences of T steps per Adam step);
    the score is the accuracy on 1,000 fresh sequences at the steps t >= delay, whose label is the
    input of step t - delay. The inputs are independent symbols, so a model that does not read
    them, or forgets them, is right with probability 1/4.
    """
    g = seqmem.seed(seed)
    model = seqmem.Tagger(make_layer(4, 16), 4)
    seqmem.fit(model, lambda i: seqmem.tasks.delayed_echo(32, T, delay, 4, generator=g), seqmem.heads.tagging_loss,
               steps=steps, lr=lr, progress=False)
    x, y = seqmem.tasks.delayed_echo(1000, T, delay, 4, generator=g)
    with torch.no_grad():
        logits, _ = model(x)
    return seqmem.metrics.accuracy(logits[:, delay:], y[:, delay:])


def random_reversal(g, batch_size, min_len, max_len, symbols):
    """B random strings of min_len..max_len symbols (ids 3 ... 3 + symbols - 1, after the library's
    padding 0, <bos> 1, <eos> 2), and their reversals followed by <eos>: two seqmem.text.Padded.
    Built here, apart from seqmem.tasks.reverse_tokens, so a test's data does not move with the task."""
    from seqmem.text import pad

    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=g).tolist()
    sources = [torch.randint(3, 3 + symbols, (n,), generator=g) for n in lengths]
    targets = [torch.cat([s.flip(0), torch.tensor([2])]) for s in sources]
    return pad(sources), pad(targets)
