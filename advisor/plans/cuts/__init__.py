"""The cuts: each memory- or compute-saving technique as a small :class:`~advisor.plans.Cut`.

Every cut is a frozen dataclass whose fields are its parameters, registered by name in
:data:`CUTS` beside its definition, and carrying its own traits, its part of the estimate and its
code fragment: a new cut is one class in one file. The families:

* :mod:`.scratch` — train from random init instead of fine-tuning (to compare);
* :mod:`.lora` — LoRA and QLoRA;
* :mod:`.freeze` — frozen embeddings, frozen layers;
* :mod:`.checkpoint` — gradient checkpointing;
* :mod:`.precision` — bf16/fp16 autocast, pure bf16 weights;
* :mod:`.optimizers` — SGD, Adafactor, 8-bit AdamW;
* :mod:`.optimizer_impl` — the optimizer step as ``foreach``, a per-parameter loop or ``fused``;
* :mod:`.zero_grad` — gradients zeroed in place (``set_to_none=False``, torch < 2.0) or freed;
* :mod:`.autograd_saves` — what autograd saves for backward, as an older torch saved it;
* :mod:`.execution` — accumulation, attention implementation, activation offload, compile;
* :mod:`.fused` — Liger-style fused kernels: linear cross-entropy, RMSNorm, SwiGLU, RoPE;
* :mod:`.prune` — structured pruning (heads, MLP channels) and unstructured pruning;
* :mod:`.sparse24` — 2:4 semi-structured sparsity, simulated by its stored layout (CUDA only);
* :mod:`.batching` — batching policies over a real length distribution (pad, group, pack, token budget);
* :mod:`.zero` — DeepSpeed ZeRO-1/2/3 over N GPUs (a distributed strategy);
* :mod:`.distributed` — strategies over several GPUs: ddp, fsdp2, hsdp (opt-in).

The import order below is the registration order, which decides :func:`default_cuts` and the
order of a sweep's plans. Plan text is parsed in :mod:`advisor.plans.parse` and plans are
enumerated in :mod:`advisor.plans.space`; their names are re-exported here for old imports.
"""

# isort: off
from advisor.plans.cuts.scratch import Scratch
from advisor.plans.cuts.lora import LoRA, QLoRA
from advisor.plans.cuts.freeze import FreezeLayers, FrozenEmbeddings
from advisor.plans.cuts.checkpoint import GradCheckpointing
from advisor.plans.cuts.precision import Bf16Autocast, Bf16Weights, Fp16Autocast
from advisor.plans.cuts.optimizers import AdafactorCut, AdamW8bit, Sgd
from advisor.plans.cuts.execution import (
    Accumulation,
    ActivationOffload,
    Compile,
    EagerAttention,
    SdpaAttention,
)
from advisor.plans.cuts.optimizer_impl import OptimizerImplementation
from advisor.plans.cuts.zero_grad import ZeroGrad
from advisor.plans.cuts.autograd_saves import AutogradSaves
from advisor.plans.cuts.fused import FusedLinearCE, FusedRMSNormCut, FusedRoPE, FusedSwiGLU
from advisor.plans.cuts.prune import Prune, UnstructuredPrune
from advisor.plans.cuts.sparse24 import Sparse24
from advisor.plans.cuts.batching import GroupByLength, Pack, PadToMax, TokenBudget
from advisor.plans.cuts.zero import ZeroCut
from advisor.plans.cuts.distributed import Ddp, Fsdp2, Hsdp

# isort: on
from advisor.plans.cuts.blocks import (
    check_targets,
    checkpoint_blocks,
    default_lora_targets,
    find_repeated_blocks,
    input_embeddings,
    leaf_modules_summary,
    load_embedding_file,
)
from advisor.plans.parse import CUT_SYNTAX_HINT, parse_cut, parse_cuts, parse_plan, parse_plans
from advisor.plans.registry import CUTS, default_cuts, describe_cuts, register_cut
from advisor.plans.space import PlanSpace, PrunedPlan, combinations, singles, user_plans

__all__ = [
    "CUTS",
    "CUT_SYNTAX_HINT",
    "Accumulation",
    "ActivationOffload",
    "AdafactorCut",
    "AdamW8bit",
    "AutogradSaves",
    "Bf16Autocast",
    "Bf16Weights",
    "Compile",
    "Ddp",
    "EagerAttention",
    "Fp16Autocast",
    "FreezeLayers",
    "FrozenEmbeddings",
    "Fsdp2",
    "FusedLinearCE",
    "FusedRMSNormCut",
    "FusedRoPE",
    "FusedSwiGLU",
    "GradCheckpointing",
    "GroupByLength",
    "Hsdp",
    "LoRA",
    "OptimizerImplementation",
    "Pack",
    "PadToMax",
    "PlanSpace",
    "Prune",
    "PrunedPlan",
    "QLoRA",
    "Scratch",
    "SdpaAttention",
    "Sgd",
    "Sparse24",
    "TokenBudget",
    "UnstructuredPrune",
    "ZeroCut",
    "ZeroGrad",
    "check_targets",
    "checkpoint_blocks",
    "combinations",
    "default_cuts",
    "default_lora_targets",
    "describe_cuts",
    "find_repeated_blocks",
    "input_embeddings",
    "leaf_modules_summary",
    "load_embedding_file",
    "parse_cut",
    "parse_cuts",
    "parse_plan",
    "parse_plans",
    "register_cut",
    "singles",
    "user_plans",
]
