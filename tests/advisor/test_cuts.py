"""The cuts on their own: parsing, plan enumeration, and what each does to a built model.

Models are built (not trained) here; measured trials are in test_plans.py.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.models import resolve_model
from advisor.plans import BuildContext, Plan, build_model, check_plan, explicit_plans, prepare
from advisor.plans.cuts import (
    CUTS,
    LoRA,
    combinations,
    default_cuts,
    default_lora_targets,
    find_repeated_blocks,
    parse_cut,
    parse_cuts,
    parse_plan,
    parse_plans,
    user_plans,
)
from profilers.trial import UnsupportedConfiguration

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_module.py"
TOY_SPEC = f"{TOY}:build"
TOY_TIED_SPEC = f"{TOY}:build_tied"

# tiny-llama: hidden 256, 4 heads, 2 kv heads (k/v out 128), 2 layers, vocab 4096, untied
LLAMA_HIDDEN, LLAMA_KV, LLAMA_LAYERS, LLAMA_VOCAB, LLAMA_TOTAL = 256, 128, 2, 4096, 3_548_416
# the toy module: hidden 64, FFN 256, 2 blocks, vocab 4096
TOY_HIDDEN, TOY_FFN, TOY_LAYERS, TOY_VOCAB, TOY_TOTAL = 64, 256, 2, 4096, 624_384


def built(model: str, plan: str | Plan, batch: int = 1, seq: int = 8, device: str = "cpu") -> nn.Module:
    plan = parse_plan(plan) if isinstance(plan, str) else plan
    source = resolve_model(model)
    recipe = prepare(plan, batch, seq)
    return build_model(plan, BuildContext(source, torch.device(device), recipe))


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def total(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- parsing -----------------------------------------------------------------------------------


def test_parse_cut_defaults_parameters_and_aliases() -> None:
    assert parse_cut("lora") == LoRA()
    cut = parse_cut("lora(r=16,lora_alpha=16,targets=q_proj|k_proj, dropout=0)")
    assert cut == LoRA(r=16, alpha=16, dropout=0.0, targets=("q_proj", "k_proj"))
    assert cut.label() == "lora(alpha=16,dropout=0.0,r=16,targets=q_proj|k_proj)"
    assert parse_cut(cut.label()) == cut  # labels parse back
    assert parse_cut("lora(targets=auto)") == LoRA()
    assert parse_cut("frozen-emb(path=/tmp/e.npy)").params() == {"path": "/tmp/e.npy"}
    # one spelling per value, so one plan name per plan
    assert parse_cut("qlora(compute_dtype=bf16)").label() == "qlora(compute_dtype=bfloat16)"


def test_parse_cut_errors_name_the_fix() -> None:
    with pytest.raises(PlanError, match="unknown cut 'lorra'") as exc:
        parse_cut("lorra")
    assert "did you mean lora" in str(exc.value)
    with pytest.raises(PlanError, match="parameters of lora: r, alpha, dropout, targets"):
        parse_cut("lora(rank=4)")
    with pytest.raises(PlanError, match="r=x is not a valid int"):
        parse_cut("lora(r=x)")
    with pytest.raises(PlanError, match="bits must be 4 or 8"):
        parse_cut("qlora(bits=3)")
    with pytest.raises(PlanError, match="unbalanced"):
        parse_cuts("lora(r=4,grad-ckpt")


def test_parse_cuts_and_plans() -> None:
    cuts = parse_cuts("lora(r=16,targets=q_proj|v_proj),grad-ckpt, bf16")
    assert [c.name for c in cuts] == ["lora", "grad-ckpt", "bf16"]
    plans = parse_plans("lora+grad-ckpt; sgd ;baseline")
    assert [p.name for p in plans] == ["grad-ckpt+lora", "sgd", "baseline"]
    # the name is canonical: the same set of cuts is the same plan whatever the order
    assert parse_plan("grad-ckpt+lora").name == parse_plan("lora+grad-ckpt").name
    assert parse_plan("lora(r=4)+sgd") == parse_plan("sgd+lora(r=4)")


def test_default_cuts_leave_out_opt_in_compile() -> None:
    names = [c.name for c in default_cuts()]
    assert "compile" in CUTS and "compile" not in names
    for name in ("lora", "qlora", "frozen-emb", "freeze-layers", "grad-ckpt", "scratch", "bf16", "fp16",
                 "bf16-weights", "sgd", "adafactor", "adamw8bit", "accum", "eager-attn", "sdpa-attn",
                 "offload"):  # fmt: skip
        assert name in names


# -- plan enumeration ----------------------------------------------------------------------------


def test_combinations_prune_conflicts_and_redundancy_with_reasons() -> None:
    cuts = parse_cuts("lora,grad-ckpt,bf16,frozen-emb,sgd,adamw8bit")
    space = combinations(cuts, 3)
    names = [p.name for p in space.plans]
    assert names[0] == "baseline"
    assert len(names) == len(set(names))
    pruned = {p.plan: p for p in space.pruned}
    assert pruned["lora+frozen-emb"].kind == "redundant"
    assert "LoRA freezes every base weight" in pruned["lora+frozen-emb"].reason
    assert pruned["adamw8bit+sgd"].reason == "adamw8bit and sgd both choose the optimizer"
    assert "grad-ckpt+lora+frozen-emb" in pruned and "grad-ckpt+lora+sgd" in names
    # 6 singles + C(6,2)=15 pairs + C(6,3)=20 triples, every one either kept or pruned once
    assert len(space.plans) - 1 + len(space.pruned) == 6 + 15 + 20
    for plan in space.plans:
        assert plan.conflict() is None and plan.redundancy() is None


def test_groups_and_explicit_conflicts() -> None:
    assert parse_plan("bf16+fp16").conflict() == "bf16 and fp16 both choose the precision"
    assert parse_plan("eager-attn+sdpa-attn").conflict() is not None
    assert parse_plan("qlora+lora").conflict() == "qlora conflicts with lora"
    assert parse_plan("qlora+bf16-weights").conflict() is not None
    assert parse_plan("freeze-layers+qlora").redundancy() is not None
    with pytest.raises(PlanError, match="cannot run: qlora conflicts with lora"):
        prepare(parse_plan("qlora+lora"), 4, 16)


def test_user_plans_put_the_baseline_first_and_drop_duplicates() -> None:
    space = user_plans(["sgd", "lora+grad-ckpt", "grad-ckpt+lora"])
    assert [p.name for p in space.plans] == ["baseline", "sgd", "grad-ckpt+lora"]
    assert space.pruned == ()


@pytest.mark.parametrize(
    ("text", "reason", "hint"),
    [
        ("grad-ckpt+grad-ckpt", "plan grad-ckpt+grad-ckpt is refused (conflict): grad-ckpt appears twice",
         "give grad-ckpt once"),
        ("sgd+adamw8bit", "plan adamw8bit+sgd is refused (conflict): adamw8bit and sgd both choose the optimizer",
         "keep one of adamw8bit and sgd"),
        ("lora+frozen-emb", "plan lora+frozen-emb is refused (redundant): frozen-emb is redundant under lora: "
         "LoRA freezes every base weight already", "drop frozen-emb (lora covers it)"),
    ],
)  # fmt: skip
def test_a_plan_given_explicitly_is_refused_in_the_words_the_sweep_prunes_it(text: str, reason: str, hint: str) -> None:
    with pytest.raises(PlanError) as info:
        check_plan(parse_plan(text))
    assert (info.value.message, info.value.hint) == (reason, hint)
    pruned = combinations(parse_cuts(text.replace("+", ",")), 2, baseline=False).pruned
    # the sweep of the same cuts prunes that plan with the very same reason
    assert [p.reason for p in pruned if p.plan == parse_plan(text).name] == [reason.split(": ", 1)[1]]
    with pytest.raises(PlanError, match="refused"):
        user_plans(["sgd", text])
    with pytest.raises(PlanError, match="refused"):
        explicit_plans(f"lora;{text}")


@pytest.mark.parametrize("text", ["", "  ", "++", "lora+", "+lora", "lora++sgd", ";", "lora;;sgd", "lora;"])
def test_empty_plan_text_is_an_error_never_the_baseline(text: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plans(text)
    assert "empty" in info.value.message or "no plan" in info.value.message
    assert info.value.hint and "'+'" in info.value.hint
    with pytest.raises(PlanError):
        explicit_plans(text)


def test_empty_plan_lists_and_cut_items() -> None:
    with pytest.raises(PlanError, match="no plans given"):
        explicit_plans([])
    with pytest.raises(PlanError, match="empty"):
        parse_plan("")
    with pytest.raises(PlanError, match="empty cut"):
        parse_cuts("lora,,sgd")
    assert parse_cuts("") == [] and parse_plan("baseline") == Plan() == parse_plan(" Baseline ")


# -- structure helpers ------------------------------------------------------------------------


def test_repeated_blocks_of_hf_and_plain_models() -> None:
    path, blocks = find_repeated_blocks(resolve_model("tiny-llama").build("meta"))
    assert path == "model.layers" and len(blocks) == LLAMA_LAYERS
    path, blocks = find_repeated_blocks(resolve_model(TOY_SPEC).build("meta"))
    assert path == "blocks" and len(blocks) == TOY_LAYERS
    assert default_lora_targets(resolve_model(TOY_SPEC).build("meta")) == ("q", "k", "v", "o", "fc1", "fc2")
    assert default_lora_targets(resolve_model("tiny-llama").build("meta")) == ("q_proj", "v_proj")
    assert default_lora_targets(resolve_model("tiny-bert").build("meta")) == ("query", "value")


# -- LoRA ----------------------------------------------------------------------------------------


def lora_closed_form(r: int, shapes: list[tuple[int, int]], layers: int) -> int:
    """r × (in + out) per targeted linear layer, over all layers."""
    return layers * sum(r * (fan_in + fan_out) for fan_in, fan_out in shapes)


def test_lora_trainable_count_is_the_closed_form_on_tiny_llama() -> None:
    model = built("tiny-llama", "lora")
    # q_proj 256 → 256, v_proj 256 → 128 (2 kv heads), r = 8, 2 layers
    expected = lora_closed_form(8, [(LLAMA_HIDDEN, LLAMA_HIDDEN), (LLAMA_HIDDEN, LLAMA_KV)], LLAMA_LAYERS)
    assert expected == 8 * (256 + 256) * 2 + 8 * (256 + 128) * 2 == 14_336
    assert trainable(model) == expected
    assert total(model) == LLAMA_TOTAL + expected
    assert trainable(model) / total(model) < 0.01  # 0.40 %
    model = built("tiny-llama", "lora(r=4,targets=q_proj|k_proj|v_proj|o_proj)")
    assert trainable(model) == lora_closed_form(4, [(256, 256), (256, 128), (256, 128), (256, 256)], 2)


def test_lora_trainable_count_is_the_closed_form_on_a_plain_module() -> None:
    h, f = TOY_HIDDEN, TOY_FFN
    model = built(TOY_SPEC, "lora")  # default targets: every linear in the blocks
    assert trainable(model) == lora_closed_form(8, [(h, h)] * 4 + [(h, f), (f, h)], TOY_LAYERS) == 18_432
    model = built(TOY_SPEC, "lora(targets=q|v)")
    assert trainable(model) == lora_closed_form(8, [(h, h), (h, h)], TOY_LAYERS) == 4_096
    assert total(model) == TOY_TOTAL + 4_096
    assert trainable(model) / total(model) < 0.01  # 0.65 %


def test_lora_targets_that_match_nothing_list_the_modules_there() -> None:
    with pytest.raises(PlanError) as exc:
        built("tiny-llama", "lora(targets=q_proj|query_key)")
    text = str(exc.value)
    assert "LoRA target query_key match" in text
    assert "q_proj (Linear ×2)" in text and "down_proj (Linear ×2)" in text
    with pytest.raises(PlanError, match=r"fc1 \(Linear ×2\)"):
        built(TOY_SPEC, "lora(targets=c_attn)")


def test_lora_works_on_the_meta_device() -> None:
    model = built("tiny-llama", "lora", device="meta")
    assert trainable(model) == 14_336


def test_qlora_quantizes_the_blocks_and_keeps_the_lora_count() -> None:
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    model = built("tiny-llama", "qlora")
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 7 * LLAMA_LAYERS  # q, k, v, o, gate, up, down in each layer
    assert trainable(model) == 14_336
    model8 = built(TOY_SPEC, "qlora(bits=8,targets=q|v)")
    assert sum(isinstance(m, bnb.nn.Linear8bitLt) for m in model8.modules()) == 6 * TOY_LAYERS
    assert trainable(model8) == 4_096


def test_qlora_and_adamw8bit_unavailable_without_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
    for name in ("qlora", "adamw8bit"):
        with pytest.raises(UnsupportedConfiguration, match="bitsandbytes is not importable"):
            parse_cut(name).check_available()


# -- warm-start embeddings and layers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "vocab_x_hidden", "tied_to"),
    [
        ("tiny-llama", LLAMA_VOCAB * LLAMA_HIDDEN, []),
        ("tiny-gpt2", 4096 * 128, ["lm_head.weight"]),  # tied: counted once
        (TOY_SPEC, TOY_VOCAB * TOY_HIDDEN, []),
        (TOY_TIED_SPEC, TOY_VOCAB * TOY_HIDDEN, ["head.weight"]),
    ],
)
def test_frozen_embeddings_remove_exactly_vocab_x_hidden(
    model: str, vocab_x_hidden: int, tied_to: list[str]
) -> None:
    base = built(model, "baseline")
    plan = parse_plan("frozen-emb")
    recipe = prepare(plan, 1, 8)
    frozen = build_model(plan, BuildContext(resolve_model(model), torch.device("cpu"), recipe))
    assert trainable(base) - trainable(frozen) == vocab_x_hidden
    assert recipe.notes["frozen_embedding_params"] == vocab_x_hidden
    assert recipe.notes["embeddings_tied_to"] == tied_to


@pytest.mark.parametrize("suffix", [".pt", ".npy", ".safetensors"])
def test_frozen_embeddings_copied_from_a_file(tmp_path: Path, suffix: str) -> None:
    matrix = torch.randn(TOY_VOCAB, TOY_HIDDEN)
    path = tmp_path / f"emb{suffix}"
    if suffix == ".pt":
        torch.save(matrix, path)
    elif suffix == ".npy":
        np.save(path, matrix.numpy())
    else:
        from safetensors.torch import save_file

        save_file({"weight": matrix}, str(path))
    model = built(TOY_SPEC, f"frozen-emb(path={path})")
    assert torch.equal(model.embed.weight, matrix)
    assert not model.embed.weight.requires_grad
    assert trainable(model) == TOY_TOTAL - TOY_VOCAB * TOY_HIDDEN


def test_embedding_shape_mismatch_names_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "emb.pt"
    torch.save(torch.zeros(1000, 64), path)
    with pytest.raises(PlanError) as exc:
        built("tiny-llama", f"frozen-emb(path={path})")
    text = str(exc.value)
    assert "(1000, 64)" in text and "(4096, 256)" in text and "hint:" in text
    with pytest.raises(PlanError, match="no embedding file"):
        built("tiny-llama", f"frozen-emb(path={tmp_path / 'missing.pt'})")


def test_freeze_layers() -> None:
    base = built("tiny-llama", "baseline")
    layer = sum(p.numel() for p in base.model.layers[0].parameters())
    assert trainable(built("tiny-llama", "freeze-layers")) == LLAMA_TOTAL - layer
    assert trainable(built("tiny-llama", "freeze-layers(k=2)")) == LLAMA_TOTAL - 2 * layer
    with pytest.raises(PlanError, match=r"freeze-layers\(k=3\) but model.layers has 2 layers"):
        built("tiny-llama", "freeze-layers(k=3)")


# -- gradient checkpointing -------------------------------------------------------------------


def test_grad_ckpt_uses_the_non_deprecated_hf_api() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # a deprecated call would raise here
        model = built("tiny-llama", "grad-ckpt")
    assert model.is_activation_checkpointing
    assert model.config.use_cache is False


def test_grad_ckpt_on_a_plain_module_recomputes_with_the_same_gradients() -> None:
    source = resolve_model(TOY_SPEC)
    batch = source.make_batch(2, 16)
    grads = []
    for plan in ("baseline", "grad-ckpt"):
        torch.manual_seed(0)
        model = built(TOY_SPEC, plan)
        source.loss(model, batch).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        if plan == "grad-ckpt":
            assert all(getattr(b, "_vram_advisor_checkpointed", False) for b in model.blocks)
    assert grads[0].keys() == grads[1].keys()  # parameter names unchanged by the wrapping
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name])


def test_grad_ckpt_without_repeated_blocks_is_a_plan_error() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(PlanError, match="no repeated blocks"):
        built(model, "grad-ckpt")  # type: ignore[arg-type]


# -- the rest -----------------------------------------------------------------------------------


def test_attention_cuts_set_the_hf_implementation_and_refuse_plain_modules() -> None:
    assert built("tiny-llama", "eager-attn").config._attn_implementation == "eager"
    assert built("tiny-llama", "sdpa-attn").config._attn_implementation == "sdpa"
    with pytest.raises(UnsupportedConfiguration, match="runs its own attention code"):
        built(TOY_SPEC, "eager-attn")


def test_offload_is_unsupported_on_cpu_with_a_reason() -> None:
    with pytest.raises(UnsupportedConfiguration, match="in host memory already"):
        parse_cut("offload").check_device(torch.device("cpu"))
    parse_cut("offload").check_device(torch.device("cuda"))  # fine where it means something


def test_accumulation_splits_the_batch() -> None:
    recipe = prepare(parse_plan("accum"), 8, 16)
    assert (recipe.micro_batch, recipe.accumulation_steps) == (2, 4)
    with pytest.raises(PlanError, match="divisible by 3"):
        prepare(parse_plan("accum(steps=3)"), 4, 16)


def test_scratch_and_bf16_weights() -> None:
    assert prepare(parse_plan("scratch"), 1, 8).pretrained is False
    model = built("tiny-llama", "bf16-weights")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_compile_is_opt_in_and_wraps_the_model_lazily() -> None:
    from advisor.plans import finish_program

    plan = parse_plan("compile(backend=eager)")
    source = resolve_model(TOY_SPEC)
    recipe = prepare(plan, 1, 8)
    ctx = BuildContext(source, torch.device("cpu"), recipe)
    prog = finish_program(plan, build_model(plan, ctx), ctx)
    assert isinstance(prog.model, torch._dynamo.eval_frame.OptimizedModule)  # compiles on first call
    assert prog.extra["compiled_backend"] == "eager"


def test_bf16_weights_builds_the_model_in_bf16_not_through_an_fp32_copy() -> None:
    import torch

    from advisor.models import resolve_model
    from advisor.plans import prepare

    recipe = prepare(parse_plan("bf16-weights"), 1, 8)
    assert recipe.model_dtype is torch.bfloat16
    model = resolve_model("tiny-llama").build("meta", dtype=recipe.model_dtype)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert prepare(parse_plan("baseline"), 1, 8).model_dtype is None  # the source's own dtype


# -- each cut's knowledge lives on its class ----------------------------------------------------


def test_registration_order_is_the_default_sweep_order() -> None:
    assert list(CUTS) == [
        "scratch", "lora", "qlora", "frozen-emb", "freeze-layers", "grad-ckpt", "bf16", "fp16",
        "bf16-weights", "sgd", "adafactor", "adamw8bit", "paged-adamw8bit", "accum", "eager-attn", "sdpa-attn",
        "offload", "compile", "optim-impl", "zero-grad", "autograd-saves", "fused-linear-ce", "fused-rmsnorm", "fused-swiglu", "fused-rope",
        "prune", "prune-unstructured", "sparse24", "pad-to-max", "group-by-length", "token-budget", "pack", "zero",
        "fsdp2", "hsdp", "ddp",
    ]  # fmt: skip


def test_every_registered_cut_has_a_title_and_a_summary() -> None:
    for name, cls in CUTS.items():
        assert cls.title and cls.summary, name
        assert cls.simulation_unsupported is None or cls.simulation_unsupported.strip(), name


def test_simulation_unsupported_is_read_from_the_cut_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.engines.simulate import SIMULATION_UNSUPPORTED, unsupported_reason

    assert dict(SIMULATION_UNSUPPORTED) == {}  # every built-in cut is replayed (compile: an upper bound)
    assert unsupported_reason(parse_plan("lora+grad-ckpt")) is None
    assert unsupported_reason(parse_plan("qlora+adamw8bit+offload+compile")) is None
    monkeypatch.setattr(CUTS["sgd"], "simulation_unsupported", "a reason")
    assert dict(SIMULATION_UNSUPPORTED) == {"sgd": "a reason"}
    reason = unsupported_reason(parse_plan("lora+sgd"))
    assert reason == "sgd cannot be simulated: a reason"


def test_each_cut_shapes_the_estimate_from_its_own_fields() -> None:
    from advisor.engines.estimate import plan_view

    view = plan_view(parse_plan("qlora(bits=8,r=4,dropout=0.1,targets=q_proj)+grad-ckpt+accum(steps=2)+sgd(momentum=0.5)"))
    assert (view.lora, view.lora_r, view.lora_dropout, view.lora_targets) == (True, 4, 0.1, ("q_proj",))
    assert (view.qlora_bits, view.grad_ckpt, view.accumulation) == (8, True, 2)
    assert (view.optimizer, view.momentum, view.notes) == ("sgd", 0.5, [])
    assert plan_view(parse_plan("scratch+sdpa-attn")) == plan_view(Plan())
    assert plan_view(parse_plan("eager-attn+bf16-weights+offload")).attention == "eager"
    assert plan_view(parse_plan("compile")).notes == [
        "compile: counted as the eager step (torch.compile usually needs less)"
    ]


def test_estimate_peak_takes_sizes_by_name_and_warns_on_positional_sizes() -> None:
    from advisor.engines.estimate import estimate_peak

    by_name = estimate_peak("tiny-llama", "lora", batch_size=2, seq_len=16, target="cpu")
    with pytest.warns(DeprecationWarning, match="pass batch_size= and seq_len= by name"):
        positional = estimate_peak("tiny-llama", "lora", 2, 16, target="cpu")  # type: ignore[misc]
    assert positional == by_name


def test_a_new_cut_is_one_class_parsed_planned_estimated_and_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut defined here, touching no other module, goes through every layer."""
    import dataclasses
    from dataclasses import dataclass

    from advisor.engines.estimate import estimate_peak
    from advisor.plans import Cut, Recipe, TrainingCode, register_cut
    from advisor.report.snippets import snippet_for, training_arguments_code

    from .test_recommend import fake_recommendation

    monkeypatch.setitem(CUTS, "test-touch", Cut)  # removed again after the test

    @register_cut
    @dataclass(frozen=True)
    class Touch(Cut):
        """Records a note; changes nothing else."""

        level: int = 1

        name = "test-touch"
        summary = "a cut defined in a test"
        order = 60
        title = "touching"
        simulation_unsupported = "a test cut is not simulated"

        def configure(self, recipe: Recipe) -> None:
            recipe.notes["touched"] = self.level

        def add_code(self, code: TrainingCode) -> None:
            code.training_arguments["touch_level"] = repr(self.level)

    assert CUTS["test-touch"] is Touch
    plan = parse_plan("test-touch(level=3)+lora")
    assert plan.name == "lora+test-touch(level=3)" and plan.cut_names == ("lora", "test-touch")
    space = combinations([*default_cuts(), Touch()], 2)
    assert any(p.name == "lora+test-touch" for p in space)
    assert prepare(plan, 1, 8).notes["touched"] == 3

    touched = estimate_peak("tiny-llama", "test-touch", batch_size=1, seq_len=16, target="cpu")
    baseline = estimate_peak("tiny-llama", None, batch_size=1, seq_len=16, target="cpu")
    assert touched.notes == ("test-touch: not modelled by the estimate; counted as the baseline",)
    assert touched.peak_bytes == baseline.peak_bytes

    rec = fake_recommendation(plans="lora")
    settings = {c.name: c.params() for c in plan.cuts}  # as reports keep them
    v = dataclasses.replace(rec.verdict("lora"), plan=plan.name, cuts=plan.cut_names, cut_settings=settings)
    assert "touch_level=3" in training_arguments_code(v, 4)
    code = snippet_for(rec, v)
    assert "touch_level=3" in code and "get_peft_model" in code
    compile(code, "touch", "exec")


def test_snippets_skip_cut_names_they_do_not_know() -> None:
    import dataclasses

    from advisor.report.snippets import snippet_for

    from .test_recommend import fake_recommendation

    rec = fake_recommendation(plans="lora")
    v = rec.verdict("lora")
    old = dataclasses.replace(v, cuts=("lora", "retired-cut"), cut_settings={**v.cut_settings, "retired-cut": {"x": 1}})
    assert snippet_for(rec, old) == snippet_for(rec, v)
