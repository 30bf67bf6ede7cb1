"""GPU <-> storage traffic (seed 002's second class): dataset reads and checkpoints.

Checkpoint size with mixed-precision Adam: BF16 weights (2 bytes) + FP32 master weights
(4) + Adam first and second moments (4 + 4) = 14 bytes per parameter by default
(Rajbhandari et al. 2020 count 16 with the FP16 gradients, which are not checkpointed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aifabric.spec.jobs import TrainingJob


def checkpoint_bytes(num_params: float, bytes_per_param: float = 14.0) -> float:
    """Bytes of one full checkpoint (weights + optimizer state)."""
    return num_params * bytes_per_param


def write_bandwidth(nbytes: float, stall: float) -> float:
    """Bytes/s needed to write nbytes within a stall budget of ``stall`` seconds."""
    return nbytes / stall


def storage_traffic(job: TrainingJob, iteration_time: float) -> dict[str, float]:
    """Dataset and checkpoint traffic of a training job (bytes, s, bytes/s)."""
    world = job.plan.world_size
    tokens_per_iteration = job.global_batch * job.seq_len
    if job.dataset_bytes is not None:
        epoch_read = job.dataset_bytes
    else:
        epoch_read = job.dataset_tokens * job.bytes_per_token_id
    per_iteration_read = epoch_read * tokens_per_iteration / job.dataset_tokens
    ckpt = checkpoint_bytes(job.model.num_params, job.checkpoint_bytes_per_param)
    ckpt_rate = write_bandwidth(ckpt, job.checkpoint_stall)
    return {
        "dataset_bytes_per_epoch": epoch_read,
        "dataset_bytes_per_iteration": per_iteration_read,
        "dataset_read_bytes_per_s": per_iteration_read / iteration_time,
        "checkpoint_bytes": ckpt,
        "checkpoint_bytes_per_param": job.checkpoint_bytes_per_param,
        "checkpoint_stall_s": job.checkpoint_stall,
        "checkpoint_write_bytes_per_s": ckpt_rate,
        "checkpoint_write_bytes_per_s_per_gpu": ckpt_rate / world,
    }
