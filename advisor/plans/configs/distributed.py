"""Readers for the multi-GPU configs: a DeepSpeed JSON and an ``accelerate config`` YAML.

DeepSpeed: the keys of DeepSpeed 0.19.8's config (``deepspeed/runtime/config.py``) and its
``DeepSpeedZeroConfig`` (``deepspeed/runtime/zero/config.py``): ``zero_optimization.stage``
and ``offload_optimizer``/``offload_param.device`` become ``zero(stage, offload_optimizer,
offload_params)``; ``train_micro_batch_size_per_gpu``, ``gradient_accumulation_steps`` and
``train_batch_size`` (= micro × accumulation × GPUs, so it gives the GPU count) the sizes;
``bf16``/``fp16.enabled`` the precision. The bucket sizes are compared with the defaults the
ZeRO model assumes (:data:`profilers.simulate.zero.ZERO_DEFAULTS`): a different one is listed
as ignored. ``"auto"`` (the Hugging Face integration's placeholder) is left to a
``TrainingArguments`` dump given alongside, or noted.

accelerate: the shape ``accelerate config`` writes (accelerate 1.16,
``accelerate/commands/config/cluster.py`` and ``config_args.py::ClusterConfig``):
``distributed_type`` MULTI_GPU → ``ddp``, FSDP → ``fsdp2`` (``fsdp_reshard_after_forward``, or
FSDP1's sharding strategy in it or in ``fsdp_sharding_strategy``: FULL_SHARD → ``fsdp2``,
SHARD_GRAD_OP → ``fsdp2(reshard=false)``, HYBRID_SHARD → ``hsdp``, NO_SHARD → ``ddp``;
FSDP2's ``parallelism_config`` with ``dp_replicate_size`` > 1 → ``hsdp(shard=dp_shard_size)``),
DEEPSPEED → ``zero`` from ``deepspeed_config``; ``num_processes`` (all machines together) →
GPUs, ``num_machines`` → nodes, ``mixed_precision`` → ``bf16``/``fp16``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advisor.core.errors import PlanError
from advisor.plans.configs.hf import MULTI_GPU_NOTE, as_bool, as_int, read_optimizer
from advisor.plans.configs.types import ConfigConflictError, ConfigError, ConfigFormat, Reading
from advisor.plans.cuts.distributed import Ddp, Fsdp2, Hsdp
from advisor.plans.cuts.zero import ZeroCut
from profilers.simulate.zero import ZERO_DEFAULTS

__all__ = ["read_accelerate", "read_deepspeed", "read_deepspeed_reference"]

_AUTO = "auto"

# DeepSpeed keys with no effect on a rank's GPU memory (logging, schedules, host-side settings)
_DS_NEUTRAL = {
    "scheduler", "steps_per_print", "wall_clock_breakdown", "dump_state", "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer", "tensorboard", "wandb", "csv_monitor", "comet", "flops_profiler",
    "comms_logger", "checkpoint", "prescale_gradients", "gradient_predivide_factor", "memory_breakdown",
    "sparse_gradients", "seed", "timers", "elasticity", "autotuning", "aio", "disable_allgather",
    "communication_data_type", "data_types", "gradient_clipping",
}  # fmt: skip
# zero_optimization keys with no effect on GPU memory (host buffers, save-time behaviour)
_ZERO_NEUTRAL = {
    "contiguous_gradients", "allgather_partitions", "reduce_scatter", "round_robin_gradients",
    "stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
    "gather_16bit_weights_on_model_save", "load_from_fp32_weights", "elastic_checkpoint",
    "ignore_unused_parameters", "legacy_stage1", "stage3_max_reuse_distance", "memory_efficient_linear",
    "use_multi_rank_bucket_allreduce", "log_trace_cache_warnings",
}  # fmt: skip
_OFFLOAD_NEUTRAL = {"pin_memory", "buffer_count", "buffer_size", "max_in_cpu", "fast_init", "nvme_path",
                    "pipeline_read", "pipeline_write", "pipeline", "ratio"}  # fmt: skip
# DeepSpeed's aliases of the stage-3 sizes (DeepSpeedZeroConfig's Field aliases)
_BUCKET_ALIASES = {"prefetch_bucket_size": "stage3_prefetch_bucket_size",
                   "param_persistence_threshold": "stage3_param_persistence_threshold",
                   "max_live_parameters": "stage3_max_live_parameters"}  # fmt: skip
# what the Hugging Face integration puts for "auto" (transformers integrations/deepspeed.py)
_HF_AUTO = {
    "reduce_bucket_size": "hidden_size²",
    "stage3_prefetch_bucket_size": "0.9 × hidden_size²",
    "stage3_param_persistence_threshold": "10 × hidden_size",
}


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == _AUTO


def _offload_target(key: str, block: Any, r: Reading) -> str:
    """``none`` or ``cpu`` from an ``offload_optimizer``/``offload_param`` block."""
    if block is None:
        return "none"
    if not isinstance(block, Mapping):
        raise ConfigError(f"zero_optimization.{key}: expected a mapping with a device, got {block!r}",
                          f'write "{key}": {{"device": "cpu"}}')  # fmt: skip
    device = str(block.get("device", "none") or "none").lower()
    for sub, value in block.items():
        if sub != "device" and sub not in _OFFLOAD_NEUTRAL:
            r.ignore(f"zero_optimization.{key}.{sub}", value)
    if device == "nvme":
        r.notes.append(f"zero_optimization.{key} to nvme: read as cpu (off the GPU either way)")
        return "cpu"
    if device not in ("none", "cpu"):
        raise ConfigError(f"zero_optimization.{key}.device {device!r} is not one DeepSpeed knows",
                          "use none, cpu or nvme")  # fmt: skip
    return device


def _zero_cut(stage: int, offload_optimizer: str, offload_params: str, key: str) -> Any:
    try:
        return ZeroCut(stage=stage, offload_optimizer=offload_optimizer, offload_params=offload_params)
    except PlanError as exc:
        raise ConfigConflictError(f"contradictory config ({key}): {exc.message}", exc.hint) from None


def _set_strategy(r: Reading, cut: Any, key: str) -> None:
    r.set("strategy", cut, key, cut.label())


def _set_gpus(r: Reading, key: str, gpus: int, nodes: int | None = None) -> None:
    r.set("gpus", gpus, key, f"{gpus} GPUs")
    if nodes is not None:
        r.set("nodes", nodes, "num_machines", f"{nodes} nodes")


def read_deepspeed(data: Mapping[str, Any], r: Reading, where: str = "") -> None:
    """A DeepSpeed config (the ``ds_config.json`` dict); ``where`` prefixes the key names when
    it sits inside another config (a TrainingArguments' ``deepspeed``)."""
    r.formats.append(ConfigFormat.DEEPSPEED)
    d = dict(data)
    for key, name in (("train_micro_batch_size_per_gpu", "micro_batch"), ("gradient_accumulation_steps", "accumulation")):
        if key in d:
            value = d.pop(key)
            if _is_auto(value):
                r.notes.append(f"{where}{key}: auto (the Trainer fills it from its own arguments)")
            else:
                r.set(name, as_int(where + key, value), where + key)
    total = d.pop("train_batch_size", None)
    if total is not None and not _is_auto(total):
        r.values["train_batch_size"] = as_int(where + "train_batch_size", total)
        r.origin["train_batch_size"] = where + "train_batch_size"
        r.mapped.append((where + "train_batch_size", "GPUs = train_batch_size / (micro-batch × accumulation)"))
    enabled = {}
    for key in ("bf16", "fp16", "bfloat16"):
        block = d.pop(key, None)
        if block is None:
            continue
        value = block.get("enabled", False) if isinstance(block, Mapping) else block
        if _is_auto(value):
            r.notes.append(f"{where}{key}.enabled: auto (the Trainer's {('fp16' if key == 'fp16' else 'bf16')} decides)")
            continue
        if as_bool(f"{where}{key}.enabled", value):
            enabled["fp16" if key == "fp16" else "bf16"] = where + key
    if len(enabled) > 1:
        raise ConfigConflictError("contradictory config: bf16 and fp16 are both enabled", "enable one of bf16, fp16")
    for name, key in enabled.items():
        meaning = "bf16 (DeepSpeed's bf16 mode: the module in bfloat16, fp32 master weights in the optimizer)"
        r.set("precision", name, f"{key}.enabled", meaning if name == "bf16" else "fp16 (DeepSpeed's fp16 mode + loss scaling)")
    if "gradient_clipping" in d:
        r.mapped.append((where + "gradient_clipping", "no memory effect"))
    opt = d.pop("optimizer", None)
    if isinstance(opt, Mapping):
        kind = str(opt.get("type", "")).lower()
        if kind in ("adam", "adamw", "fusedadam", "cpuadam", "deepspeedcpuadam"):
            # FusedAdam / DeepSpeedCPUAdam: two fp32 states per parameter, as torch's AdamW
            read_optimizer(r, where + "optimizer.type", "adamw_torch")
        else:
            r.ignore(where + "optimizer.type", opt.get("type"), "optimizer not modelled: read as AdamW")
    zero = d.pop("zero_optimization", None)
    if zero is not None:
        _read_zero(dict(zero) if isinstance(zero, Mapping) else {"stage": zero}, r, where + "zero_optimization")
    ac = d.pop("activation_checkpointing", None)
    if ac:
        r.ignore(where + "activation_checkpointing", ac,
                 "not modelled: DeepSpeed's checkpointing API needs the model's code; use gradient_checkpointing")  # fmt: skip
    for key, value in d.items():
        if key not in _DS_NEUTRAL:
            r.ignore(where + key, value)


def _read_zero(z: dict[str, Any], r: Reading, key: str) -> None:
    stage = as_int(f"{key}.stage", z.pop("stage", 0), 0)
    if stage > 3:
        raise ConfigError(f"{key}.stage {stage}: DeepSpeed has stages 0 to 3", "set stage 0, 1, 2 or 3")
    optimizer = _offload_target("offload_optimizer", z.pop("offload_optimizer", None), r)
    params = _offload_target("offload_param", z.pop("offload_param", None), r)
    for legacy in ("cpu_offload", "cpu_offload_param"):
        if as_bool(f"{key}.{legacy}", z.pop(legacy, False)):
            if legacy == "cpu_offload":
                optimizer = "cpu"
            else:
                params = "cpu"
    if stage == 0:
        if optimizer != "none" or params != "none":
            raise ConfigConflictError(f"contradictory config: {key} stage 0 with an offload",
                                      "offload needs stage 1-3 (parameters: stage 3)")  # fmt: skip
        _set_strategy(r, Ddp(), f"{key}.stage 0")
        r.notes.append("ZeRO stage 0: plain data parallelism, read as ddp")
    else:
        _set_strategy(r, _zero_cut(stage, optimizer, params, f"{key}.stage"), f"{key}.stage")
    overlap = z.pop("overlap_comm", None)
    if overlap is not None and not _is_auto(overlap) and as_bool(f"{key}.overlap_comm", overlap) != (stage == 3):
        r.ignore(f"{key}.overlap_comm", overlap,
                 f"not modelled: the ZeRO model assumes DeepSpeed's default ({str(stage == 3).lower()} at stage {stage})")  # fmt: skip
    for name, value in z.items():
        full = _BUCKET_ALIASES.get(name, name)
        if full in ZERO_DEFAULTS:
            default = ZERO_DEFAULTS[full]
            if _is_auto(value):
                how = _HF_AUTO.get(full)
                r.notes.append(
                    f"{key}.{name}: auto" + (f" (the Trainer sets {how})" if how else "")
                    + f"; the ZeRO model assumes DeepSpeed's default {default:,}"
                )  # fmt: skip
            elif as_int(f"{key}.{name}", value, 0) != default:
                r.ignore(f"{key}.{name}", value, f"the ZeRO model assumes DeepSpeed's default {default:,}")
        elif name not in _ZERO_NEUTRAL:
            r.ignore(f"{key}.{name}", value)


def read_deepspeed_reference(r: Reading, key: str, value: Any) -> None:
    """A ``deepspeed`` setting inside another config (TrainingArguments, axolotl): its dict is
    read as a DeepSpeed config; a path to a JSON that exists is read too; any other path is
    listed as ignored (give the file alongside)."""
    if isinstance(value, Mapping):
        read_deepspeed(value, r, where=f"{key}.")
        return
    path = Path(str(value))
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"{key}: {path} is not valid JSON: {exc}", "fix the file's syntax") from None
        if isinstance(data, Mapping):
            r.notes.append(f"{key}: read {path}")
            read_deepspeed(data, r, where=f"{key}.")
            return
    r.ignore(key, value, "a DeepSpeed JSON not found here: give it alongside; planned for one GPU")
    r.notes.append(MULTI_GPU_NOTE)


# -- accelerate --------------------------------------------------------------------------------

_ACC_NEUTRAL = {
    "compute_environment", "machine_rank", "main_process_ip", "main_process_port", "rdzv_backend", "same_network",
    "main_training_function", "debug", "enable_cpu_affinity", "gpu_ids", "tpu_name", "tpu_zone", "tpu_use_cluster",
    "tpu_use_sudo", "commands", "command_file", "tpu_env", "downcast_bf16", "ipex_config", "mpirun_config",
    "dynamo_config", "megatron_lm_config", "fp8_config",
}  # fmt: skip
_FSDP_NEUTRAL = {
    "fsdp_state_dict_type", "fsdp_cpu_ram_efficient_loading", "fsdp_sync_module_states", "fsdp_use_orig_params",
    "fsdp_transformer_layer_cls_to_wrap", "fsdp_min_num_params", "fsdp_forward_prefetch", "fsdp_backward_prefetch",
    "fsdp_version",
}  # fmt: skip
_DS_ACC_NEUTRAL = {"zero3_init_flag", "zero3_save_16bit_model", "deepspeed_multinode_launcher", "deepspeed_hostfile",
                   "deepspeed_exclusion_filter", "deepspeed_inclusion_filter", "deepspeed_moe_layer_cls_names",
                   "offload_optimizer_nvme_path", "offload_param_nvme_path"}  # fmt: skip
# accelerate 1.16 utils/constants.py FSDP_SHARDING_STRATEGY, in the order of torch's ShardingStrategy (1-5)
_SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2")


def read_accelerate(data: Mapping[str, Any], r: Reading) -> None:
    """An ``accelerate config`` YAML (``default_config.yaml``)."""
    r.formats.append(ConfigFormat.ACCELERATE)
    d = dict(data)
    kind = str(d.pop("distributed_type", "NO")).upper()
    processes = d.pop("num_processes", None)
    machines = as_int("num_machines", d.pop("num_machines", 1))
    gpus = as_int("num_processes", processes) if processes not in (None, -1) else None
    if gpus is not None:
        _set_gpus(r, "num_processes", gpus, machines)
    elif machines > 1:
        r.set("nodes", machines, "num_machines", f"{machines} nodes")
    precision = str(d.pop("mixed_precision", "no") or "no").lower()
    if precision in ("bf16", "fp16"):
        r.set("precision", precision, "mixed_precision", f"{precision} autocast")
    elif precision == "fp8":
        r.ignore("mixed_precision", precision, "not modelled: fp8 training")
    elif precision != "no":
        raise ConfigError(f"mixed_precision {precision!r} is not one accelerate knows", "use no, fp16, bf16 or fp8")
    if as_bool("use_cpu", d.pop("use_cpu", False)):
        r.ignore("use_cpu", True, "training on CPU: the prediction is for the GPU")
    dynamo = d.get("dynamo_config")
    if isinstance(dynamo, Mapping) and str(dynamo.get("dynamo_backend", "NO")).upper() not in ("NO", "NONE"):
        r.set("compile", True, "dynamo_config.dynamo_backend", "compile")
    fsdp = dict(d.pop("fsdp_config", None) or {})
    ds = dict(d.pop("deepspeed_config", None) or {})
    parallel = dict(d.pop("parallelism_config", None) or {})
    if kind == "NO":
        if fsdp or ds:
            r.notes.append("distributed_type NO: its fsdp_config / deepspeed_config are not used")
    elif kind == "MULTI_GPU":
        _set_strategy(r, Ddp(), "distributed_type MULTI_GPU")
    elif kind == "FSDP":
        _read_fsdp(fsdp, parallel, r, gpus, machines)
        fsdp, parallel = {}, {}
    elif kind == "DEEPSPEED":
        _read_accelerate_deepspeed(ds, r)
        ds = {}
    else:
        raise ConfigError(f"distributed_type {kind} is not modelled",
                          "the advisor plans NO, MULTI_GPU (DDP), FSDP and DEEPSPEED on GPUs")  # fmt: skip
    for key, value in parallel.items():
        r.ignore(f"parallelism_config.{key}", value)
    for key, value in d.items():
        if value is not None and key not in _ACC_NEUTRAL:
            r.ignore(key, value)


def _read_fsdp(f: dict[str, Any], parallel: dict[str, Any], r: Reading, gpus: int | None, machines: int) -> None:
    version = as_int("fsdp_config.fsdp_version", f.get("fsdp_version", 1))
    if version == 1:
        r.notes.append("fsdp_version 1 read as FSDP2 (fully_shard): the same sharded layout per rank")
    reshard_value = f.pop("fsdp_reshard_after_forward", None)
    strategy = f.pop("fsdp_sharding_strategy", None)
    for value in (reshard_value, strategy):  # FSDP1 writes the strategy's name (or its number 1-5)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
            strategy = _SHARDING[value - 1]
        elif isinstance(value, str) and value.strip().upper() in _SHARDING:
            if strategy is not None and value is reshard_value and str(strategy).upper() != value.strip().upper():
                raise ConfigConflictError(
                    f"contradictory config: fsdp_reshard_after_forward {value} but fsdp_sharding_strategy {strategy}",
                    "keep one sharding strategy",
                )
            strategy = value.strip().upper()
    key = "fsdp_config.fsdp_reshard_after_forward" if reshard_value is not None else "fsdp_config.fsdp_sharding_strategy"
    wrap_policy = str(f.pop("fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP") or "NO_WRAP").upper()
    wrap = "root" if wrap_policy == "NO_WRAP" else "layer"
    if wrap_policy == "SIZE_BASED_WRAP":
        r.notes.append("fsdp_auto_wrap_policy SIZE_BASED_WRAP read as one unit per repeated block")
    replicate = as_int("parallelism_config_dp_replicate_size", parallel.pop("parallelism_config_dp_replicate_size", 1))
    shard_size = parallel.pop("parallelism_config_dp_shard_size", None)
    for name in ("parallelism_config_tp_size", "parallelism_config_cp_size"):
        if as_int(name, parallel.pop(name, 1)) > 1:
            raise ConfigError(f"parallelism_config.{name} > 1: tensor/context parallelism is not modelled",
                              "set it to 1")  # fmt: skip
    if strategy is None:
        reshard = True if reshard_value is None else as_bool(key, reshard_value)
        strategy = "FULL_SHARD" if reshard else "SHARD_GRAD_OP"
    if replicate > 1:
        if strategy not in ("FULL_SHARD", "HYBRID_SHARD"):
            raise ConfigConflictError(
                f"contradictory config: dp_replicate_size {replicate} with {strategy}",
                "HSDP shards fully within each replica group",
            )
        shard = as_int("parallelism_config_dp_shard_size", shard_size) if shard_size not in (None, -1) else None
        if shard is None and gpus is not None:
            shard = gpus // replicate
        cut = Hsdp(shard=shard or 1, wrap=wrap)
        _set_strategy(r, cut, "parallelism_config.parallelism_config_dp_replicate_size")
    elif strategy == "HYBRID_SHARD":  # FSDP1: sharded within a node, replicated across nodes
        if gpus is None:
            raise ConfigError("HYBRID_SHARD without num_processes: the shard group size is unknown",
                              "set num_processes and num_machines")  # fmt: skip
        _set_strategy(r, Hsdp(shard=max(1, gpus // machines), wrap=wrap), key)
    elif strategy == "HYBRID_SHARD_ZERO2":
        raise ConfigError("HYBRID_SHARD_ZERO2 is not modelled", "use FULL_SHARD, SHARD_GRAD_OP or HYBRID_SHARD")
    elif strategy == "NO_SHARD":
        _set_strategy(r, Ddp(), key)
    else:
        _set_strategy(r, Fsdp2(reshard=strategy == "FULL_SHARD", wrap=wrap), key)
    if as_bool("fsdp_activation_checkpointing", f.pop("fsdp_activation_checkpointing", False)):
        r.set("grad-ckpt", True, "fsdp_config.fsdp_activation_checkpointing", "grad-ckpt")
    offload = f.pop("fsdp_offload_params", False)
    if as_bool("fsdp_offload_params", offload):
        r.ignore("fsdp_config.fsdp_offload_params", offload,
                 "not modelled: CPU offload under FSDP2; the prediction keeps the shards on the GPU (an upper bound)")  # fmt: skip
    for name, value in f.items():
        if name not in _FSDP_NEUTRAL:
            r.ignore(f"fsdp_config.{name}", value)


def _read_accelerate_deepspeed(ds: dict[str, Any], r: Reading) -> None:
    path = ds.pop("deepspeed_config_file", None)
    if path:
        r.notes.append(f"deepspeed_config_file {path}: give that JSON alongside to read its settings")
        for name, value in ds.items():
            if name not in _DS_ACC_NEUTRAL:
                r.ignore(f"deepspeed_config.{name}", value, "accelerate uses the deepspeed_config_file instead")
        return
    zero: dict[str, Any] = {"stage": ds.pop("zero_stage", 0)}
    for name, block in (("offload_optimizer_device", "offload_optimizer"), ("offload_param_device", "offload_param")):
        device = ds.pop(name, None)
        if device not in (None, "none"):
            zero[block] = {"device": device}
    _read_zero(zero, r, "deepspeed_config.zero_stage")
    if "gradient_accumulation_steps" in ds:
        r.set("accumulation", as_int("deepspeed_config.gradient_accumulation_steps",
                                     ds.pop("gradient_accumulation_steps")), "deepspeed_config.gradient_accumulation_steps")  # fmt: skip
    if "gradient_clipping" in ds:
        ds.pop("gradient_clipping")
        r.mapped.append(("deepspeed_config.gradient_clipping", "no memory effect"))
    for name, value in ds.items():
        if name not in _DS_ACC_NEUTRAL:
            r.ignore(f"deepspeed_config.{name}", value)
