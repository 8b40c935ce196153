"""Associative recall by the paper's LSTM baseline: bit errors by number of items, trained on 2-6 (chapter 8).

The baseline of Graves et al. (2014, section 4.3, figures 10 and 11): a network without an
external memory, three stacked LSTM layers of 256 units (``seqmem.LSTM(8, 256, num_layers=3)``,
torch's fused kernel) with a linear read-out of 6 logits at every step (``seqmem.Tagger``), about
twenty times the parameters of the NTM of ``ntm_recall.py``. Everything else is that script's: the
data (``tasks.associative_recall``, 2-6 items of 3 vectors of 6 bits, B = 16), the loss, Adam with
learning rate 1e-3 and the gradient's total norm clipped to 10, the budget of steps, the validation
that selects the parameters, and the test on 2 ... 12 items.

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/lstm_recall.py --seeds 0 1 2        # CPU, 1 thread
    python book/08-ntm-dnc/experiments/lstm_recall.py --quick --out /tmp/quick.json

The results file has the layout of ``ntm_recall.json``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import ntm_recall
import seqmem
from ntm_recall import DESCRIPTIONS, ITEM_LEN, N_BITS, SHARED

HERE = Path(__file__).resolve().parent
EXPERIMENT = "associative recall by an LSTM: bit errors by number of items 2-12, trained on 2-6"


def build(cfg: dict, device) -> seqmem.Tagger:
    """The stacked LSTM of the configuration with its read-out: (B, T, 8) in, (B, T, 6) logits out."""
    lstm = seqmem.LSTM(N_BITS + 2, cfg["hidden_size"], num_layers=cfg["num_layers"], batch_first=True)
    return seqmem.Tagger(lstm, N_BITS).to(device)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ntm_recall.add_arguments(parser)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=3)
    ntm_recall.add_run_arguments(parser, str(HERE / "lstm_recall.json"))
    return ntm_recall.apply_quick(parser.parse_args(argv))


def main(argv=None):
    args = arguments(argv)
    names = (*SHARED, "hidden_size", "num_layers", "lr", "clip_norm")
    cfg = {**{name: getattr(args, name) for name in names}, "train_items": [2, 6], "item_len": ITEM_LEN,
           "n_bits": N_BITS, "task": DESCRIPTIONS["task"],
           "model": "Tagger(LSTM(8, hidden_size, num_layers, batch_first=True), 6): a linear read-out per step",
           **{k: DESCRIPTIONS[k] for k in ("loss", "optimizer_settings", "test_set", "selection")}}
    ntm_recall.run_seeds(args, EXPERIMENT, cfg, build)


if __name__ == "__main__":
    main()
