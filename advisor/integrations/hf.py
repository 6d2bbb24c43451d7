"""``VramAdvisorCallback``: watch a Hugging Face ``Trainer`` run with :func:`advisor.watch`.

Steps are the Trainer's own (``on_step_begin`` … ``on_step_end``, so one step spans all its
gradient-accumulation micro-batches, the optimizer step and ``zero_grad``); the model and the
optimizer come from the callback's keyword arguments (transformers 5.25,
``CallbackHandler.call_event``). Without ``batch_size``, the prediction uses
``args.per_device_train_batch_size`` and the sequence length of the first forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from advisor.api import watch

__all__ = ["VramAdvisorCallback"]


class VramAdvisorCallback(TrainerCallback):  # type: ignore[misc]
    """Records every Trainer step's peak memory (by part) and time; see :func:`advisor.watch`
    for the arguments (``plan`` or ``config``: a training config read by
    :func:`advisor.plan_from_config`, its batch used unless ``batch_size`` is given; ``budget``, ``gpu``, ``margin``, ``warn_at``, ``exact_every``,
    ``on_step``, ``on_warning``). ``report`` is written at the end of training; the
    :class:`~advisor.report.watch.WatchReport` is kept on :attr:`last_report`."""

    def __init__(self, *, report: str | Path | None = None, **watch_kwargs: Any) -> None:
        self.report_path = report
        self.watch_kwargs = watch_kwargs
        self.watch: Any = None
        self.last_report: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None, **kw: Any) -> None:
        kwargs = dict(self.watch_kwargs)
        if kwargs.get("plan") is not None and kwargs.get("batch_size") is None:  # (a config brings its own)
            kwargs["batch_size"] = int(args.per_device_train_batch_size)
        # the optimizer's state is counted; the Trainer's callbacks delimit the steps
        w = watch(model, optimizer, report=self.report_path, step_on_optimizer=False, **kwargs)
        self.watch = w.start(begin=False)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.watch is not None:
            self.watch.begin_step()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.watch is not None:
            self.watch.end_step()

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.watch is not None:
            self.last_report = self.watch.stop()
            self.watch = None

    @property
    def records(self) -> list[Any]:
        """The step records so far (also after training)."""
        if self.watch is not None:
            return list(self.watch.records)
        return list(self.last_report.steps) if self.last_report is not None else []
