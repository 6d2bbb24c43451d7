"""A real DeepSpeed ZeRO step on this rank, measured with the exact tensor tracker.

One rank of a ``torchrun`` job (:mod:`advisor.engines.rank_worker`) hands a built
:class:`~profilers.trial.StepProgram` (the plan without its ``zero`` cut) to
:func:`run_zero_step`, which wraps its model and optimizer in ``deepspeed.initialize`` with
``zero_optimization.stage`` and measures, on the CPU (gloo) or a GPU (NCCL):

* the **model states** DeepSpeed keeps on this rank after an optimizer step (everything its
  engine and ZeRO optimizer allocated and still hold: 16-bit parameters or their partitions,
  fp32 master and Adam partitions, gradient partitions, the reduction bucket), counted from
  before ``deepspeed.initialize`` so nothing DeepSpeed allocates escapes the count;
* the **tensor peak** of one further step (forward, backward with DeepSpeed's reduction
  hooks, ``engine.step()``), with its breakdown by role.

DeepSpeed 0.19.8 on the CPU (followed here; ``deepspeed/accelerator/cpu_accelerator.py``,
``deepspeed/comm/torch.py``): ``DS_ACCELERATOR=cpu`` selects the CPU accelerator, whose
communication backend is ``ccl`` only when ``oneccl_bindings_for_pytorch`` imports, else
``gloo`` (cpu_accelerator.py ``__init__``); streams and events are no-ops and ``pin_memory``
returns the tensor. ``TorchBackend.__init__`` (comm/torch.py line 207) first JIT-compiles the
``deepspeed_shm_comm`` C++ op (``build_shm_op``, a shared-memory all-reduce used for inference)
with torch's ``cpp_extension.load``, which waits forever on a ``lock`` file that an earlier,
killed compile left in ``~/.cache/torch_extensions/py311_cpu/deepspeed_shm_comm/``
(``torch/utils/file_baton.py``: ``FileBaton.wait``): that is why a first ZeRO-2 run with gloo
"hung". The op is not needed for training over gloo, so :func:`_skip_shm_op` makes
``build_shm_op`` return ``None`` (its documented "not compatible" result) for the run.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from profilers.records import Provenance, TensorPeak
from profilers.simulate.phases import PhaseTracker
from profilers.tracker import Role, TensorMemoryTracker, optimizer_state_tensors, tensors_in
from profilers.trial import StepProgram, UnsupportedConfiguration

__all__ = ["DEEPSPEED_RUN_VERSION", "ZeroRun", "deepspeed_config", "run_zero_step"]

log = logging.getLogger(__name__)

DEEPSPEED_RUN_VERSION = "0.19.8"  # the DeepSpeed source this runner was written against


class ZeroRun:
    """What :func:`run_zero_step` measured on this rank (bytes; exact tensor counts)."""

    def __init__(
        self, peak: TensorPeak, model_state_bytes: int, roles: dict[str, int], version: str, phase_peaks: dict[str, int]
    ) -> None:
        self.peak = peak
        self.phase_peaks = phase_peaks  # the measured step's peak in each phase
        self.model_state_bytes = model_state_bytes  # live after the optimizer step, batch excluded
        self.roles = roles  # model_state_bytes by role
        self.deepspeed_version = version

    def to_extra(self) -> dict[str, Any]:
        return {
            "zero_model_state_bytes": self.model_state_bytes,
            "zero_model_state_roles": dict(self.roles),
            "deepspeed_version": self.deepspeed_version,
            "zero_phase_peaks": dict(self.phase_peaks),
        }


def deepspeed_config(stage: int, micro_batch: int, accumulation_steps: int, sixteen_bit: bool) -> dict[str, Any]:
    """The DeepSpeed JSON of the measured run: ZeRO ``stage`` with every bucket at its default
    (the values :mod:`profilers.simulate.zero` assumes), bf16 when the weights are 16-bit."""
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation_steps,
        "zero_optimization": {"stage": stage},
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }
    if sixteen_bit:
        config["bf16"] = {"enabled": True}
    return config


@contextlib.contextmanager
def _skip_shm_op() -> Iterator[None]:
    """``deepspeed.comm.torch.build_shm_op`` returns ``None`` (no JIT compile; module doc)."""
    # importlib, not ``import deepspeed.comm.torch``: ``deepspeed.comm.torch`` as an attribute
    # is the torch package (deepspeed/comm/__init__.py imports torch)
    module: Any = importlib.import_module("deepspeed.comm.torch")
    original = module.build_shm_op
    module.build_shm_op = lambda: None
    try:
        yield
    finally:
        module.build_shm_op = original


def _import_deepspeed(device: torch.device) -> Any:
    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError as exc:
        raise UnsupportedConfiguration(
            f"a measured ZeRO run needs DeepSpeed ({exc}): pip install 'vram-advisor[deepspeed]'"
        ) from exc
    return deepspeed


def _zero_step(engine: Any, prog: StepProgram, tracker: TensorMemoryTracker | None) -> None:
    """One optimizer step through the DeepSpeed engine (it scales, reduces, steps, zeroes)."""
    for _ in range(prog.accumulation_steps):
        with prog.step_context():
            if tracker is not None:
                tracker.set_phase("forward")
            with prog.forward_context():
                loss = prog.loss_fn(engine, prog.batch)
            if tracker is not None:
                tracker.set_phase("backward")
            engine.backward(loss)
            del loss
        if tracker is not None:
            _relabel(tracker, engine)  # the gradient partitions exist now
            tracker.set_phase("optimizer")
        engine.step()  # steps only at the accumulation boundary


def _attr_tensors(obj: Any, names: tuple[str, ...]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            out += tensors_in(value)
    return out


def _state_tensors(engine: Any) -> dict[Role, list[torch.Tensor]]:
    """DeepSpeed's model states by role, as far as its attributes name them (0.19.8:
    stage_1_and_2.py and stage3.py attribute names)."""
    zero = engine.optimizer
    params = [p.detach() for p in engine.module.parameters()]
    params += [p.ds_tensor for p in engine.module.parameters() if getattr(p, "ds_tensor", None) is not None]
    params += _attr_tensors(zero, ("bit16_groups_flat", "fp16_partitioned_groups_flat"))
    optim = optimizer_state_tensors(zero.optimizer) if hasattr(zero, "optimizer") else []
    optim += _attr_tensors(zero, ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"))
    grads = _attr_tensors(zero, ("grad_partitions_flat_buffer",
                                 "_DeepSpeedZeroOptimizer_Stage3__param_id_to_grad_partition"))  # fmt: skip
    averaged = getattr(zero, "averaged_gradients", None) or {}
    for group in averaged.values() if isinstance(averaged, dict) else averaged:
        flat = getattr(group, "flat_partition", None)  # stage 2's compact fp32 gradient partition
        grads += [flat] if isinstance(flat, torch.Tensor) else tensors_in(group)
    grads += [p.grad for p in engine.module.parameters() if p.grad is not None]
    buckets = getattr(zero, "ipg_buckets", None) or {}
    # stage 1/2's IPGBucket.buffer is a list of tensors, stage 3's IPGBucketZ3.buffer one tensor
    # (and buffer_meta): never iterate a tensor here (500M one-element views: the run that
    # "hung" under the rank worker was this loop filling memory until the kernel killed a rank)
    comm = tensors_in([(getattr(b, "buffer", None), getattr(b, "buffer_meta", None)) for b in buckets.values()])
    return {Role.PARAMETER: params, Role.OPTIMIZER: optim, Role.GRADIENT: grads, Role.COMMUNICATION: comm}


def _buckets_as_communication(engine: Any, tracker: TensorMemoryTracker) -> None:
    """The reduction buckets ZeRO-1/2 allocate at each backward (``setup_buckets``) count as
    communication buffers."""
    zero = engine.optimizer
    setup = getattr(zero, "setup_buckets", None)
    if setup is None:
        return

    def setup_buckets(*args: Any, **kwargs: Any) -> Any:
        with tracker.communicating():
            return setup(*args, **kwargs)

    zero.setup_buckets = setup_buckets


def _relabel(tracker: TensorMemoryTracker, engine: Any) -> None:
    for role, tensors in _state_tensors(engine).items():
        unseen = tracker.relabel(tensors, role)
        if unseen:
            log.debug("%d B of DeepSpeed %s storages were never seen by the tracker", unseen, role.value)


def run_zero_step(
    prog: StepProgram, stage: int, device: torch.device, *, warmup_steps: int = 1, backend: str = "gloo"
) -> ZeroRun:
    """Wrap ``prog`` in DeepSpeed ZeRO-``stage`` on this rank and measure it (module doc).

    The process group must be up (``torchrun``). ``warmup_steps`` (≥ 1) steps create the
    optimizer state before the measured one.
    """
    if prog.optimizer_step is not None or prog.scale_loss is not None:
        raise UnsupportedConfiguration("a measured ZeRO run takes plain AdamW/SGD steps (no GradScaler, no custom step)")
    dtypes = {p.dtype for p in prog.model.parameters() if p.requires_grad}
    if torch.float16 in dtypes:
        raise UnsupportedConfiguration("a measured ZeRO run is modelled in bf16 or fp32, not fp16")
    deepspeed = _import_deepspeed(device)
    sixteen_bit = torch.bfloat16 in dtypes
    config = deepspeed_config(stage, prog.samples_per_micro_batch, prog.accumulation_steps, sixteen_bit)
    config["zero_allow_untested_optimizer"] = True
    gc.collect()
    tracker = PhaseTracker(device.type)
    tracker.register_training_state(prog.model, prog.optimizer, prog.batch)
    try:
        with _skip_shm_op():
            deepspeed.init_distributed(dist_backend=backend)
            with tracker:
                # what DeepSpeed allocates and keeps and we do not name is its own buffer
                with tracker.communicating():
                    engine, *_ = deepspeed.initialize(model=prog.model, optimizer=prog.optimizer, config=config)
                    _buckets_as_communication(engine, tracker)
                    for _ in range(max(1, warmup_steps)):
                        _zero_step(engine, prog, None)
                gc.collect()
                _relabel(tracker, engine)
                tracker.restart_peak()
                tracker.phase_peaks.clear()
                tracker.phase_starts.clear()
                _zero_step(engine, prog, tracker)
                tracker.set_phase("zero_grad")
            gc.collect()
            _relabel(tracker, engine)
            peak = tracker.result(Provenance.MEASURED)
            after = tracker.breakdown_now()
    finally:
        tracker.close()
    roles = {
        "parameters": after.parameter_bytes,
        "gradients": after.gradient_bytes,
        "optimizer": after.optimizer_state_bytes,
        "deepspeed buffers": after.communication_buffer_bytes,
        "other": after.activation_bytes + after.buffer_bytes,
    }
    states = after.total_bytes - after.input_bytes
    log.debug("ZeRO-%d rank model states %d B (%s), step peak %d B", stage, states, roles, peak.peak_bytes)
    del engine
    return ZeroRun(peak, states, roles, str(getattr(deepspeed, "__version__", "?")), dict(tracker.phase_peaks))
