"""What the tests of the gated layers share: a torch layer and ours with the same weights, and the
tensors their gradients are compared on (float64 leaves, so assert_close compares tightly)."""
import torch

#: The layer configurations every drop-in is compared with torch on.
LAYER_CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(num_layers=2, bias=False),
]


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
