"""Visual question answering on generated scenes, over seeds: the claims of chapter 5's page 08.

For each seed, three ``seqmem.vqa.SpatialAttentionVQA`` networks (question-guided attention, the
mean of the regions, the question alone) train on the same 10,000 scenes of
``seqmem.tasks.visual_questions`` (seed 1) with the same batches, exactly as the page does: Adam at
3e-3, batches of 64, the first 300 steps on the template "is there a red square ?" only (a
curriculum: with every template from the start, the loss stays at log 2 for 600 to more than 1,000
steps), then 2,200 steps on all three. Each is tested on 2,000 scenes (seed 2): accuracy, per
template, and for the attention network the mean attention on the cells that make a "yes" true.
The page trains seed 0 live; this script measures other seeds, so that the page's asserted levels
are not one lucky run.

Usage (from the repository root; about 4 minutes on one CPU thread):

    python book/05-attention/experiments/vqa_seeds.py
    python book/05-attention/experiments/vqa_seeds.py --seeds 1 --steps 50 --out /tmp/vqa.json   # a smoke test
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import seqmem
from seqmem import tasks
from seqmem.experiment import Record
from seqmem.tasks import scenes
from seqmem.vqa import SpatialAttentionVQA

HERE = Path(__file__).resolve().parent
EXPERIMENT = "question-guided spatial attention vs mean pooling vs question only, generated scenes, 10k training"


def run_one(pooling, seed, steps, curriculum, train_set, test_set):
    g = seqmem.seed(seed)
    model = SpatialAttentionVQA(len(scenes.scene_vocab()), pooling=pooling)
    easy = (train_set.kinds == 0).nonzero().squeeze(1)

    def batch(step):
        if step < curriculum:
            return easy[torch.randint(len(easy), (64,), generator=g)]
        return torch.randint(len(train_set.answers), (64,), generator=g)

    def loss(model, idx):
        out = model(train_set.images[idx], train_set.questions[idx], train_set.lengths[idx])
        return F.cross_entropy(out.logits, train_set.answers[idx])

    start = time.process_time()
    history = seqmem.fit(model, batch, loss, steps=steps, lr=3e-3, progress=False)
    model.eval()
    with torch.no_grad():
        out = model(test_set.images, test_set.questions, test_set.lengths)
    right = (out.logits.argmax(-1) == test_set.answers).float()
    yes = test_set.answers == 1
    mass = (out.attention * test_set.relevant).flatten(1).sum(1)
    return {"model": pooling, "seed": seed, "accuracy": round(float(right.mean()), 4),
            "accuracy_by_template": [round(float(right[test_set.kinds == k].mean()), 4) for k in range(3)],
            "relevant_mass_yes": round(float(mass[yes].mean()), 4),
            "final_loss_100": round(sum(history.loss[-100:]) / 100, 4), "cpu_s": round(time.process_time() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--curriculum", type=int, default=300)
    parser.add_argument("--out", default=str(HERE / "vqa_seeds.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_set = tasks.visual_questions(10_000, generator=torch.Generator().manual_seed(1))
    test_set = tasks.visual_questions(2_000, generator=torch.Generator().manual_seed(2))
    cfg = {"train_scenes": 10_000, "test_scenes": 2_000, "batch": 64, "lr": 3e-3, "steps": args.steps,
           "curriculum_steps": args.curriculum, "model": "SpatialAttentionVQA defaults (grid 4, cell 8, 32 wide)"}
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("model", "seed"),
                    order=lambda r: (r["seed"], ("attention", "mean", "none").index(r["model"])),
                    device="cpu, 1 thread, one run at a time")
    for seed in args.seeds:
        for pooling in ("attention", "mean", "none"):
            row = run_one(pooling, seed, args.steps, args.curriculum, train_set, test_set)
            print(row, flush=True)
            record.add(row)


if __name__ == "__main__":
    main()
