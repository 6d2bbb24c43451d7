"""Communication per training step of a distributed plan: volume per rank and time on a link.

Ring collectives over N ranks (NCCL's ring algorithm; the bus-bandwidth convention of
nccl-tests): each rank sends ``(N − 1)/N × size`` for an all-gather or a reduce-scatter of a
``size``-byte tensor, and ``2(N − 1)/N × size`` for an all-reduce. Per optimizer step:

* ``ddp``: all-reduce of the gradients, once per optimizer step (``no_sync`` while accumulating);
* ``zero-1``: reduce-scatter of the gradients once per step, all-gather of the updated weights;
* ``zero-2``: reduce-scatter of the gradients every micro-batch (DeepSpeed reduces in backward),
  all-gather of the updated weights once;
* ``zero-3`` and ``fsdp2``: per micro-batch, all-gather of the weights in forward and again in
  backward (resharded after forward), reduce-scatter of the gradients; ``fsdp2`` without
  resharding gathers once per micro-batch;
* ``hsdp``: as ``fsdp2`` within each shard group of ``shard`` ranks, plus an all-reduce of the
  gradient shard across the ``N / shard`` replicas.

Time is volume over the slowest link the ring crosses: the GPU's own link inside one node
(NVLink/NVSwitch or PCIe, from the catalog), the catalog's inter-node link (InfiniBand) when the
ranks span nodes. No overlap with compute is assumed (an upper bound; DeepSpeed and FSDP overlap
much of it). Provenance: estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.gpus import GpuSpec, Link, inter_node_link, intra_node_link
from profilers.records import Provenance

__all__ = [
    "STRATEGIES",
    "CommEstimate",
    "all_gather_bytes",
    "all_reduce_bytes",
    "comm_estimate",
    "comm_volume",
    "link_for",
    "reduce_scatter_bytes",
]

STRATEGIES = ("ddp", "fsdp2", "fsdp2-noreshard", "hsdp", "zero-1", "zero-2", "zero-3")


def all_reduce_bytes(size: int, n: int) -> int:
    """Bytes one rank sends in a ring all-reduce of ``size`` bytes over ``n`` ranks."""
    return 2 * (n - 1) * size // n if n > 1 else 0


def all_gather_bytes(size: int, n: int) -> int:
    """Bytes one rank sends in a ring all-gather producing ``size`` bytes over ``n`` ranks."""
    return (n - 1) * size // n if n > 1 else 0


reduce_scatter_bytes = all_gather_bytes  # the same volume, the other direction of the ring


def comm_volume(
    strategy: str,
    *,
    parameter_bytes: int,
    gradient_bytes: int,
    world_size: int,
    accumulation_steps: int = 1,
    shard: int | None = None,
) -> tuple[tuple[str, int], ...]:
    """(collective, bytes one rank sends) per optimizer step (module doc).

    ``parameter_bytes`` are the weights that are gathered (the compute dtype), and
    ``gradient_bytes`` the gradients reduced (trainable ones only: frozen weights have none).
    """
    n, acc = world_size, max(1, accumulation_steps)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    if n < 2:
        return ()
    if strategy == "ddp":
        return (("all-reduce gradients", all_reduce_bytes(gradient_bytes, n)),)
    if strategy == "zero-1":
        return (
            ("reduce-scatter gradients", reduce_scatter_bytes(gradient_bytes, n)),
            ("all-gather weights", all_gather_bytes(parameter_bytes, n)),
        )
    if strategy == "zero-2":
        return (
            ("reduce-scatter gradients", acc * reduce_scatter_bytes(gradient_bytes, n)),
            ("all-gather weights", all_gather_bytes(parameter_bytes, n)),
        )
    if strategy == "hsdp":
        s = shard or n
        replicas = n // s
        return (
            ("all-gather weights (forward, backward)", acc * 2 * all_gather_bytes(parameter_bytes, s)),
            ("reduce-scatter gradients", acc * reduce_scatter_bytes(gradient_bytes, s)),
            ("all-reduce gradient shards across replicas", all_reduce_bytes(gradient_bytes // s, replicas)),
        )
    gathers = 1 if strategy == "fsdp2-noreshard" else 2
    return (
        (f"all-gather weights ({'forward' if gathers == 1 else 'forward, backward'})",
         acc * gathers * all_gather_bytes(parameter_bytes, n)),
        ("reduce-scatter gradients", acc * reduce_scatter_bytes(gradient_bytes, n)),
    )  # fmt: skip


def link_for(gpu: GpuSpec, nodes: int = 1) -> Link:
    """The slowest link a ring over ``nodes`` nodes of ``gpu`` crosses."""
    inside = intra_node_link(gpu)
    if nodes <= 1:
        return inside
    between = inter_node_link()
    return between if between.bytes_per_s < inside.bytes_per_s else inside


@dataclass(frozen=True)
class CommEstimate:
    """Communication of one rank per optimizer step: what it sends, over what, how long."""

    strategy: str
    world_size: int
    nodes: int
    collectives: tuple[tuple[str, int], ...]  # (collective, bytes sent by one rank)
    link: Link
    provenance: Provenance = Provenance.ESTIMATED

    @property
    def bytes_per_step(self) -> int:
        return sum(b for _, b in self.collectives)

    @property
    def time_s(self) -> float:
        """Seconds per step at the link's bandwidth, without overlap with compute."""
        return self.bytes_per_step / self.link.bytes_per_s if self.bytes_per_step else 0.0


def comm_estimate(
    strategy: str,
    gpu: GpuSpec,
    *,
    parameter_bytes: int,
    gradient_bytes: int,
    world_size: int,
    nodes: int = 1,
    accumulation_steps: int = 1,
    shard: int | None = None,
) -> CommEstimate:
    """:func:`comm_volume` on ``gpu``'s link (the inter-node one when ``nodes`` > 1)."""
    volume = comm_volume(
        strategy, parameter_bytes=parameter_bytes, gradient_bytes=gradient_bytes,
        world_size=world_size, accumulation_steps=accumulation_steps, shard=shard,
    )  # fmt: skip
    return CommEstimate(strategy, world_size, nodes, volume, link_for(gpu, nodes))
