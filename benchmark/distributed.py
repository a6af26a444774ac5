"""Data-parallel training under ``torchrun``: which rank this is, each rank's share of a batch, and the
all-gather with gradients that lets the hinge loss see the whole global batch.

``torchrun --nproc-per-node=N -m benchmark run ...`` starts N processes; each reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` from its environment (``context``) and joins one process group (gloo on CPU, NCCL on CUDA).

**Batches.** Every rank builds the same epoch of group-wise batches from the seed (``epoch_batches``), so the
batch order does not depend on N. Each global batch is then cut into N contiguous shards (``shard``), one per
rank, and every rank takes one step per global batch: the step counts match, so no rank waits at a collective
that another never reaches.

**Loss and its gradient.** Each rank encodes its shard, then ``gather_rows`` concatenates every rank's
embeddings in rank order (OpenCLIP's ``gather_with_grad``): every rank holds the embeddings of the whole global
batch and computes the same VSE++ loss L on it as one process would. The gather's backward sums, over ranks, the
gradient each rank's L sends to a shard, so a rank's own embeddings receive N * dL/de. DistributedDataParallel then averages the parameter gradients over the N ranks, which gives
(1/N) * sum_r N * dL/dtheta|_r = dL/dtheta: exactly the single-process gradient of the global batch. Parameters
after the embeddings (the alignment's) see the full L on every rank and are averaged to dL/dtheta too.
A global batch smaller than N is not cut: every rank computes it whole and alone, and the average is again
dL/dtheta. With dropout, each rank draws its own masks, so N ranks match one process in distribution, not bit
for bit; with dropout 0, one step on N ranks equals one step on one process up to float rounding (a test; fresh training
noise is drawn per step, not per rank: ``training.with_feature_noise``). A collective
error is taken for another rank's failure (``peer_failed``), since it is almost always that.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

# Rank 0 alone evaluates dev each epoch while the others wait at a barrier: the process group's timeout must
# outlast the longest evaluation (COCO 5K with local alignment takes tens of minutes on a CPU).
TIMEOUT = datetime.timedelta(hours=4)


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs to MLflow, writes checkpoints and evaluates."""
        return self.rank == 0


def context() -> Context:
    """This process's place in a ``torchrun`` job (a single process outside one)."""
    return Context(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def join(ctx: Context, device: torch.device) -> None:
    """Join the job's process group (once): gloo on CPU, NCCL on CUDA."""
    if ctx.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT,
                                device_id=device if device.type == "cuda" else None)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def leave(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def reseed(seed: int, ctx: Context, epoch: int = 0) -> None:
    """Give each rank but 0 its own random stream (dropout masks), derived from the seed, the rank and the epoch;
    rank 0 keeps the single-process stream. Call once the model is built: every rank must build the same one."""
    if ctx.distributed and ctx.rank:
        torch.manual_seed(int(np.random.SeedSequence([seed, ctx.rank, epoch]).generate_state(1)[0]))


def peer_failed(exc: BaseException, ctx: Context) -> bool:
    """Whether a collective failed because another rank went away (gloo: the connection closed; NCCL: an abort)."""
    return ctx.distributed and (isinstance(exc, dist.DistError) or "closed by peer" in str(exc) or "remote worker" in str(exc))


# One message for a rank stopped by a failure elsewhere, however it learns of it (a closed connection, or torchrun's
# SIGTERM): which comes first is a matter of timing.
STOPPED = ("another rank of this torchrun job failed or the job was stopped (see the first error above); "
           "this rank stopped, and the run ends FAILED")


def shard(batch: np.ndarray, ctx: Context) -> tuple[np.ndarray, bool]:
    """This rank's contiguous share of a global batch, and whether the shards are to be gathered (False when the
    batch is smaller than the world: then every rank takes it whole)."""
    if not ctx.distributed or len(batch) < ctx.world:
        return batch, False
    return np.array_split(batch, ctx.world)[ctx.rank], True


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order, gradients flowing back to each rank's own
    rows. Shapes may differ in any dim (shards of unequal size, captions of unequal length): each is zero-padded
    to the largest before the all-gather, and the batch padding is dropped after it (padding of later dims stays;
    it sits under False in the text masks)."""
    if tensor.dtype == torch.bool:  # gloo gathers numbers
        return gather_rows(tensor.to(torch.uint8)).bool()
    world = dist.get_world_size()
    shape = torch.tensor(tensor.shape, dtype=torch.long, device=tensor.device)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    largest = torch.stack(shapes).amax(dim=0).tolist()
    padded = tensor.new_zeros(largest)
    padded[tuple(slice(0, size) for size in tensor.shape)] = tensor
    parts = _GatherWithGrad.apply(padded)
    return torch.cat([part[: int(size[0])] for part, size in zip(parts, shapes)])


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward gives each rank the sum, over ranks, of the gradients for its own part (an
    all-reduce, which gloo has, instead of a reduce-scatter, which it lacks)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        summed = torch.stack(list(grads))
        dist.all_reduce(summed)
        return summed[dist.get_rank()]


def gather_embedding(embedding):
    """``gather_rows`` applied to every tensor field of an embedding dataclass (``ImageEmbedding``, ``TextEmbedding``)."""
    return dataclasses.replace(embedding, **{field.name: gather_rows(value) for field in dataclasses.fields(embedding)
                                             if isinstance(value := getattr(embedding, field.name), torch.Tensor)})
