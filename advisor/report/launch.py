"""Launch commands and configs for a distributed plan: a DeepSpeed JSON for ``zero``, an
``accelerate`` FSDP config and ``torchrun`` + ``fully_shard`` code for ``fsdp2``/``hsdp``, and
``torchrun`` + DDP for ``ddp``; each with the ``accelerate config`` YAML for it.
:func:`advisor.plan_from_config` reads every file written here back to the same plan (tested).

The keys follow the installed libraries: DeepSpeed 0.19.8's ``DeepSpeedZeroConfig``
(``deepspeed/runtime/zero/config.py``, the bucket sizes written out with the values the
advisor assumed) and accelerate 1.16's ``ClusterConfig`` with its ``fsdp_config`` keys
(``accelerate/commands/config/cluster.py``: ``fsdp_version: 2``,
``fsdp_reshard_after_forward``…).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LaunchSnippets",
    "accelerate_ddp_yaml",
    "accelerate_deepspeed_yaml",
    "accelerate_fsdp_yaml",
    "deepspeed_config",
    "launch_markdown",
    "launch_snippets",
]

# DeepSpeed 0.19.8's defaults (deepspeed/runtime/zero/config.py), written out so the run uses
# what the advisor assumed (profilers.simulate.zero.ZERO_DEFAULTS holds the same numbers)
_BUCKETS = {
    "reduce_bucket_size": 500_000_000,
    "allgather_bucket_size": 500_000_000,
    "stage3_prefetch_bucket_size": 50_000_000,
    "stage3_max_live_parameters": 1_000_000_000,
    "stage3_param_persistence_threshold": 100_000,
}


@dataclass(frozen=True)
class LaunchSnippets:
    """How to launch one distributed plan: the command and the files it reads."""

    strategy: str
    command: str
    files: dict[str, str] = field(default_factory=dict)  # file name → its text


def deepspeed_config(
    stage: int,
    *,
    offload_optimizer: str = "none",
    offload_params: str = "none",
    bf16: bool = True,
    micro_batch: int = 1,
    accumulation_steps: int = 1,
    buckets: dict[str, int] | None = None,
    gpus: int | None = None,
) -> dict[str, Any]:
    """A DeepSpeed config (the dict of ``ds_config.json``) for ZeRO ``stage``; with ``gpus``
    also ``train_batch_size`` (micro-batch × accumulation × GPUs, which DeepSpeed checks)."""
    sizes = {**_BUCKETS, **(buckets or {})}
    zero: dict[str, Any] = {
        "stage": stage,
        "contiguous_gradients": True,
        "overlap_comm": stage == 3,  # DeepSpeed's own default
        "reduce_bucket_size": sizes["reduce_bucket_size"],
        "allgather_bucket_size": sizes["allgather_bucket_size"],
    }
    if stage == 3:
        for key in ("stage3_prefetch_bucket_size", "stage3_max_live_parameters", "stage3_param_persistence_threshold"):
            zero[key] = sizes[key]
    if offload_optimizer == "cpu":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if offload_params == "cpu":
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    sizes_of_step = {"train_batch_size": micro_batch * accumulation_steps * gpus} if gpus else {}
    return {
        **sizes_of_step,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation_steps,
        "bf16": {"enabled": bf16},
        "zero_optimization": zero,
        "gradient_clipping": 1.0,
    }


def accelerate_fsdp_yaml(
    gpus: int,
    nodes: int = 1,
    *,
    reshard: bool = True,
    bf16: bool = True,
    checkpointing: bool = False,
    shard: int | None = None,
) -> str:
    """An ``accelerate launch --config_file`` YAML for FSDP2 over ``gpus`` GPUs on ``nodes``;
    ``shard`` (HSDP: sharded within groups of ``shard`` GPUs) adds accelerate 1.16's
    ``parallelism_config`` with ``dp_replicate_size`` × ``dp_shard_size`` = ``gpus``."""
    lines = [
        *_accelerate_head("FSDP", gpus, nodes, bf16),
        "fsdp_config:",
        "  fsdp_version: 2",
        f"  fsdp_reshard_after_forward: {'true' if reshard else 'false'}",
        "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP",
        "  fsdp_state_dict_type: SHARDED_STATE_DICT",
        "  fsdp_cpu_ram_efficient_loading: true",
        f"  fsdp_activation_checkpointing: {'true' if checkpointing else 'false'}",
        "  fsdp_offload_params: false",
    ]
    if shard is not None:
        lines += [
            "parallelism_config:",
            f"  parallelism_config_dp_replicate_size: {max(1, gpus // shard)}",
            f"  parallelism_config_dp_shard_size: {shard}",
            "  parallelism_config_tp_size: 1",
            "  parallelism_config_cp_size: 1",
        ]
    return "\n".join(lines) + "\n"


def _accelerate_head(kind: str, gpus: int, nodes: int, bf16: bool | None) -> list[str]:
    """The keys every ``accelerate config`` file starts with (accelerate 1.16's ``ClusterConfig``);
    ``bf16=None`` leaves ``mixed_precision`` out, as ``accelerate config`` does when a DeepSpeed
    config file holds it."""
    precision = [] if bf16 is None else [f"mixed_precision: {'bf16' if bf16 else 'no'}"]
    return [
        "compute_environment: LOCAL_MACHINE",
        f"distributed_type: {kind}",
        *precision,
        "use_cpu: false",
        "debug: false",
        f"num_machines: {nodes}",
        f"num_processes: {gpus}",
        "machine_rank: 0",
        "rdzv_backend: static",
        "same_network: true",
        "main_training_function: main",
    ]


def accelerate_ddp_yaml(gpus: int, nodes: int = 1, *, bf16: bool = True) -> str:
    """An ``accelerate launch --config_file`` YAML for DDP (``MULTI_GPU``)."""
    return "\n".join(_accelerate_head("MULTI_GPU", gpus, nodes, bf16)) + "\n"


def accelerate_deepspeed_yaml(gpus: int, nodes: int = 1) -> str:
    """An ``accelerate launch --config_file`` YAML for DeepSpeed that points at ``ds_config.json``
    (the settings, precision included, live there, as ``accelerate config`` writes it when given
    a config file: ``cluster.py`` asks no mixed precision then)."""
    lines = [
        *_accelerate_head("DEEPSPEED", gpus, nodes, None),
        "deepspeed_config:",
        "  deepspeed_config_file: ds_config.json",
        "  zero3_init_flag: true",
    ]
    if nodes > 1:
        lines.append("  deepspeed_multinode_launcher: standard")
    return "\n".join(lines) + "\n"


def _torchrun(gpus: int, nodes: int) -> str:
    per_node = max(1, gpus // max(1, nodes))
    if nodes > 1:
        return (
            f"torchrun --nnodes {nodes} --nproc-per-node {per_node} --node-rank $NODE_RANK "
            "--rdzv-backend c10d --rdzv-endpoint $MASTER_ADDR:29500 train.py"
        )
    return f"torchrun --nproc-per-node {per_node} train.py"


def _fully_shard_code(reshard: bool) -> str:
    return "\n".join([
        "# train.py: FSDP2 (torch.distributed.fsdp.fully_shard), one process per GPU",
        "import torch, torch.distributed as dist",
        "from torch.distributed.fsdp import fully_shard, MixedPrecisionPolicy",
        "dist.init_process_group('nccl')",
        "torch.cuda.set_device(dist.get_rank() % torch.cuda.device_count())",
        "model = build_model()  # your model, e.g. AutoModelForCausalLM.from_config(...)",
        "mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)",
        "for layer in model.model.layers:  # each transformer block is one FSDP unit",
        f"    fully_shard(layer, mp_policy=mp, reshard_after_forward={reshard})",
        f"fully_shard(model, mp_policy=mp, reshard_after_forward={reshard})",
        "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)",
    ])  # fmt: skip


def launch_snippets(
    cut_settings: dict[str, dict[str, Any]], gpus: int, nodes: int = 1, *, micro_batch: int = 1
) -> LaunchSnippets | None:
    """The launch of a plan given its cuts' settings (as reports keep them); ``None`` for a
    single-GPU plan."""
    names = set(cut_settings)
    bf16 = bool(names & {"bf16", "bf16-weights"})
    accumulation = int(cut_settings.get("accum", {}).get("steps", 1))
    per_node = max(1, gpus // max(1, nodes))
    if "zero" in names:
        z = cut_settings["zero"]
        config = deepspeed_config(
            int(z.get("stage", 2)),
            offload_optimizer=str(z.get("offload_optimizer", "none")),
            offload_params=str(z.get("offload_params", "none")),
            bf16=bf16,
            micro_batch=micro_batch,
            accumulation_steps=accumulation,
            gpus=gpus,
        )
        hostfile = " --hostfile hostfile" if nodes > 1 else ""
        command = (
            f"deepspeed{hostfile} --num_nodes {nodes} --num_gpus {per_node} train.py --deepspeed ds_config.json"
            f"   # or: accelerate launch --use_deepspeed --deepspeed_config_file ds_config.json "
            f"--num_processes {gpus} train.py"
        )
        files = {"ds_config.json": json.dumps(config, indent=2) + "\n",
                 "accelerate.yaml": accelerate_deepspeed_yaml(gpus, nodes)}  # fmt: skip
        return LaunchSnippets("zero", command, files)
    if names & {"fsdp2", "hsdp"}:
        key = "fsdp2" if "fsdp2" in names else "hsdp"
        reshard = bool(cut_settings[key].get("reshard", True))
        shard = int(cut_settings[key].get("shard", 2)) if key == "hsdp" else None
        yaml_text = accelerate_fsdp_yaml(gpus, nodes, reshard=reshard, bf16=bf16, checkpointing="grad-ckpt" in names,
                                         shard=shard)  # fmt: skip
        command = f"{_torchrun(gpus, nodes)}   # or: accelerate launch --config_file fsdp.yaml train.py"
        return LaunchSnippets(key, command, {"fsdp.yaml": yaml_text, "train.py": _fully_shard_code(reshard) + "\n"})
    if "ddp" in names:
        code = "\n".join([
            "# train.py: DDP, one process per GPU",
            "import torch, torch.distributed as dist",
            "from torch.nn.parallel import DistributedDataParallel as DDP",
            "dist.init_process_group('nccl')",
            "rank = dist.get_rank() % torch.cuda.device_count(); torch.cuda.set_device(rank)",
            "model = DDP(build_model().cuda(), device_ids=[rank])",
        ])  # fmt: skip
        command = f"{_torchrun(gpus, nodes)}   # or: accelerate launch --config_file accelerate.yaml train.py"
        files = {"train.py": code + "\n", "accelerate.yaml": accelerate_ddp_yaml(gpus, nodes, bf16=bf16)}
        return LaunchSnippets("ddp", command, files)
    return None


def launch_markdown(snippets: LaunchSnippets) -> str:
    """The snippets as Markdown: the command, then each file in a fenced block."""
    lang = {".json": "json", ".yaml": "yaml", ".py": "python"}
    out = ["```bash", snippets.command, "```"]
    for name, text in snippets.files.items():
        ext = name[name.rfind(".") :]
        out += ["", f"`{name}`:", "", f"```{lang.get(ext, '')}", text.rstrip("\n"), "```"]
    return "\n".join(out) + "\n"
