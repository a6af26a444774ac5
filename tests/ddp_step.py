"""Two training steps of a tiny model, on one process or on each rank of ``torchrun`` (the DDP equivalence test
runs it both ways). Arguments: OUT RESULTS VARIANT. Rank 0 saves the mean loss and the updated weights to OUT."""

import sys
from pathlib import Path

import numpy as np
import torch
from conftest import tiny_config

from benchmark import distributed, runner
from benchmark.data.batches import CaptionPairs, epoch_batches, training_groups
from benchmark.training import Trainer

out, results, variant = sys.argv[1:4]
ctx = distributed.context()
# batch 15: shards of 8 and 7 captions on two ranks, and the last batch of the epoch (5 captions) is cut 3 + 2
cfg = tiny_config(model={"variant": variant, "dropout": 0.0}, train={"batch_size": 15, "warmup_epochs": 0})
prepared = runner.prepare(cfg, Path(results), ctx=ctx)
data = prepared.training_data()
initial = {name: weights.clone() for name, weights in prepared.model.state_dict().items()}
trainer = Trainer(prepared.model, cfg.train, prepared.device, ctx, data.train_noise, cfg.seed)  # fresh noise: per step, not per rank
batches = epoch_batches(training_groups(data.train, cfg.train.group_batches, []), cfg.train.batch_size, np.random.default_rng(0))
loss, _, _ = trainer.train_epoch(CaptionPairs(data.train, data.train_tokens), [batches[0], batches[-1]], 1, 1)
if ctx.main:
    grads = {name: parameter.grad for name, parameter in prepared.model.named_parameters()}  # the last step's, averaged
    torch.save({"loss": loss, "model": prepared.model.state_dict(), "initial": initial, "grads": grads,
                "batches": [len(batches[0]), len(batches[-1])]}, out)
distributed.leave(ctx)
