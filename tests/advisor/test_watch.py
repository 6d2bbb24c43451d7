"""advisor.watch and the Hugging Face callback against an independent exact tracker.

The reference here is a plain storage tracker written in this file (a TorchDispatchMode, storage
ids and weakref finalizers; nothing from profilers/): it is entered around the same steps as
the watcher, so both see every op of the step, and the per-step peaks must be equal to the byte.
"""

from __future__ import annotations

import json
import logging
import weakref
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import advisor

transformers = pytest.importorskip("transformers")


class RefTracker(TorchDispatchMode):
    """Live bytes of CPU storages: those alive at the start (given) plus every storage an op
    returns, until it is freed. The peak is the largest total seen."""

    def __init__(self, resident: list[torch.Tensor]) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.total = 0
        self.peak = 0
        self._fins: list[weakref.finalize] = []
        for t in resident:
            self._add(t)

    def _add(self, t: torch.Tensor) -> None:
        if t.device.type != "cpu":
            return
        s = t.untyped_storage()
        if id(s) in self.live or s.nbytes() == 0:
            return
        self.live[id(s)] = s.nbytes()
        self.total += s.nbytes()
        self.peak = max(self.peak, self.total)
        self._fins.append(weakref.finalize(s, self._free, id(s)))

    def _free(self, key: int) -> None:
        self.total -= self.live.pop(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        return out

    def cut(self) -> int:
        """End a segment: its peak is returned and the next segment starts from what is live."""
        peak, self.peak = self.peak, self.total
        return peak

    def close(self) -> None:
        for f in self._fins:
            f.detach()


def resident(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    out = [p.detach() for p in model.parameters()] + list(model.buffers())
    out += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        for state in optimizer.state.values():
            out += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return out


def tiny_llama() -> torch.nn.Module:
    cfg = transformers.LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg)


class Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, seq: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.ids = torch.randint(0, 128, (n, seq), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


@pytest.mark.slow  # a few real Trainer steps and one simulation
def test_hf_trainer_callback_matches_the_exact_tracker(tmp_path: Any) -> None:
    from advisor.integrations.hf import VramAdvisorCallback

    watcher = VramAdvisorCallback(plan="baseline", report=tmp_path / "watch.json")
    ref_peaks: list[int] = []

    class Around(transformers.TrainerCallback):  # type: ignore[name-defined,misc]  # the reference is entered outside the watcher
        ref: RefTracker | None = None

        def on_train_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            watcher.on_train_begin(args, state, control, **kw)

        def on_step_begin(self, args, state, control, model=None, optimizer=None, **kw):  # type: ignore[no-untyped-def]
            self.ref = RefTracker(resident(model, optimizer))
            self.ref.__enter__()
            watcher.on_step_begin(args, state, control, **kw)

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            watcher.on_step_end(args, state, control, **kw)
            assert self.ref is not None
            self.ref.__exit__(None, None, None)
            self.ref.close()
            ref_peaks.append(self.ref.peak)

        def on_train_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            watcher.on_train_end(args, state, control, **kw)

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=3, use_cpu=True,
        report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0,
    )  # fmt: skip
    trainer = transformers.Trainer(model=tiny_llama(), args=args, train_dataset=Tokens(8, 16), callbacks=[Around()])
    trainer.train()

    records = watcher.records
    assert [r.step for r in records] == [1, 2, 3]
    assert [r.peak_bytes for r in records] == ref_peaks
    assert all(r.source == "cpu-tensors" and r.breakdown is not None for r in records)
    for r in records:
        assert r.breakdown is not None and r.breakdown.total_bytes == r.peak_bytes
    # AdamW's two moments exist from the first step on, gradients at the peak in every step
    n_param_bytes = sum(p.numel() * 4 for p in trainer.model.parameters())
    assert records[-1].breakdown is not None
    assert records[-1].breakdown.parameter_bytes == n_param_bytes
    assert records[-1].breakdown.optimizer_state_bytes >= 2 * n_param_bytes

    report = watcher.last_report
    assert report is not None and report.prediction is not None
    assert report.prediction.peak_bytes is not None, report.prediction.reason
    assert (report.prediction.batch_size, report.prediction.seq_len) == (2, 16)
    err = report.prediction_error
    assert err is not None
    assert err == (report.prediction.peak_bytes - max(ref_peaks)) / max(ref_peaks)
    # the simulation is exact but for the batch, which the Trainer makes before the step begins
    # (so neither tracker sees it allocated): the difference is the predicted inputs (768 B)
    # less one 4-byte scalar the Trainer's run has and the replay not (not yet pinned down)
    assert report.prediction.breakdown is not None
    inputs = report.prediction.breakdown.input_bytes
    assert inputs - 4 <= report.prediction.peak_bytes - max(ref_peaks) <= inputs
    assert "prediction error" in report.to_markdown()
    data = json.loads((tmp_path / "watch.json").read_text())
    assert data["prediction_error"] == pytest.approx(err)
    assert [s["peak_bytes"] for s in data["steps"]] == ref_peaks


def test_watch_with_an_optimizer_delimits_steps_and_warns_before_the_budget(caplog: Any) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen: list[str] = []
    ref = RefTracker(resident(model, opt))  # one reference for the run, cut where steps end
    ref_peaks: list[int] = []

    def forward_backward() -> None:  # the batch and the loss die on return
        x = torch.randn(4, 64)
        model(x).square().mean().backward()

    # a budget of 20 KiB less a 20% margin; warn at half of it: the 17,440 B of parameters are past
    with caplog.at_level(logging.WARNING), ref:
        with advisor.watch(
            model, opt, budget=20480, margin=0.2, warn_at=0.5, on_step=lambda rec: ref_peaks.append(ref.cut()),
            on_warning=lambda rec, msg: seen.append(msg),
        ) as w:  # fmt: skip
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                forward_backward()
                opt.step()  # ends the watched step
    ref.close()
    report = w.report()
    assert [s.step for s in report.steps] == [1, 2, 3]
    assert [s.peak_bytes for s in report.steps] == ref_peaks
    # step 1 peaks when SGD creates its momentum; later steps in backward (the momentum there)
    assert [s.peak_phase for s in report.steps] == ["optimizer", "backward", "backward"]
    n_param_bytes = (64 * 64 + 64 + 64 * 8 + 8) * 4
    for rec in report.steps:
        assert rec.breakdown is not None
        assert (rec.breakdown.parameter_bytes, rec.breakdown.optimizer_state_bytes) == (n_param_bytes, n_param_bytes)
    assert report.budget_bytes == int(20480 * 0.8)
    assert report.warn_bytes == int(report.budget_bytes * 0.5)
    assert len(seen) == 1 and "step 1" in seen[0]
    assert any("warning level" in r.getMessage() for r in caplog.records)


def test_watch_explicit_steps_and_sampling() -> None:
    model = torch.nn.Linear(16, 16)
    x = torch.randn(2, 16)
    with advisor.watch(model, exact_every=2) as w:
        for _ in range(4):
            model(x).sum().backward()
            w.step()
    report = w.report()
    assert [s.source for s in report.steps] == ["cpu-tensors", "timing-only", "cpu-tensors", "timing-only"]
    assert report.prediction is None and report.prediction_error is None
    # step 3: weight + bias + their grads live throughout, the output (2×16) and its sum on top
    exact = report.steps[2]
    assert exact.breakdown is not None and exact.breakdown.gradient_bytes == (16 * 16 + 16) * 4


def test_watch_rejects_bad_arguments() -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(advisor.InvalidInputError):
        advisor.watch(model, warn_at=1.5)
    with pytest.raises(advisor.AdvisorError):
        advisor.watch(model, exact_every=-1)


def test_cuda_path_reads_the_allocator_peaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: torch.cuda's counters are stood in for, to check what the watcher reads
    and when (reset at each step's start, peaks at its end)."""
    from profilers import nvml
    from profilers.watch import StepWatcher

    calls: list[str] = []
    peaks = iter([1000, 3000])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: next(peaks))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 4096)
    monkeypatch.setattr(nvml, "status", lambda: type("S", (), {"available": False})())
    model = torch.nn.Linear(4, 4)  # on the CPU: none of its tensors counts as resident on "cuda"
    w = StepWatcher(model, device=torch.device("cuda"), hook_optimizer=False).start()
    assert calls == ["sync", "reset"]
    w.step()
    w.end_step()
    w.stop()
    assert [(r.peak_bytes, r.reserved_bytes, r.source) for r in w.records] == [
        (1000, 4096, "cuda-allocator"),
        (3000, 4096, "cuda-allocator"),
    ]
    assert w.records[1].breakdown is not None and w.records[1].breakdown.activation_bytes == 3000
    assert calls == ["sync", "reset", "sync", "sync", "reset", "sync"]
