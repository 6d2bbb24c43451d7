"""The fake world of a replay: a fake mode, a fake device, fake parameters and a fake batch.

A model built on the ``meta`` device has shapes but no storage, so any size fits in a laptop's
memory. :func:`fakeify_module` replaces its parameters and buffers with ``FakeTensor``\\ s on a
*fake device* (tied weights stay tied); :class:`FakeWorld` bundles the mode, the device and the
known values (:class:`~profilers.simulate.shadows.ShadowValues`) a builder works in.

The fake device: on a CPU-only torch build a fake ``cuda`` device aborts the process once
autograd runs, so the replay uses a fake ``cpu`` device there; where torch is built with CUDA, a
fake ``cuda`` device is used when a probe in a child process shows it works
(:func:`fake_device_type`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.utils._pytree import tree_map

from profilers.simulate.shadows import ShadowValues
from profilers.trial import StepProgram

__all__ = [
    "FAKE_DEVICE_ENV",
    "FakeBuild",
    "FakeWorld",
    "fake_batch",
    "fake_cuda_works",
    "fake_device_type",
    "fakeify_module",
    "new_fake_mode",
]

# a builder gets the fake world (mode, device, known values) and returns the program built in it
FakeBuild = Callable[["FakeWorld"], StepProgram]

FAKE_DEVICE_ENV = "VRAM_ADVISOR_FAKE_DEVICE"  # "cpu" or "cuda" overrides the runtime probe

# -- the fake device -------------------------------------------------------------------------

_PROBE = """
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
with FakeTensorMode():
    lin = torch.nn.Linear(8, 8, device="cuda")
    x = torch.randn(4, 8, device="cuda", requires_grad=True)
    lin(x).float().pow(2).mean().backward()
    assert x.grad is not None and x.grad.device.type == "cuda"
print("ok")
"""


@functools.lru_cache(maxsize=1)
def fake_cuda_works() -> tuple[bool, str | None]:
    """Whether a fake ``cuda`` device survives a backward pass here, and if not, why.

    Probed in a child process: on a CPU-only build the attempt aborts the whole process.
    """
    if not torch.backends.cuda.is_built():
        return False, f"this torch build ({torch.__version__}) has no CUDA, so the fake device is cpu"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the fake-cuda probe could not run ({exc})"
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return True, None
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return False, f"a fake cuda device does not work with this torch ({tail[0][:200]})"


def fake_device_type(prefer: str = "auto") -> str:
    """``"cuda"`` when a fake CUDA device works here (or is asked for), else ``"cpu"``."""
    choice = os.environ.get(FAKE_DEVICE_ENV, prefer).strip().lower() or "auto"
    if choice == "cpu":
        return "cpu"
    if choice == "cuda":
        return "cuda"
    return "cuda" if fake_cuda_works()[0] else "cpu"


def new_fake_mode() -> FakeTensorMode:
    """A fake mode for a replay: real tensors that stray in are converted, not rejected."""
    return FakeTensorMode(allow_non_fake_inputs=True)


def _fake_like(t: torch.Tensor, mode: FakeTensorMode, device: torch.device) -> torch.Tensor:
    with mode:
        return torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device=device)


def fakeify_module(model: nn.Module, mode: FakeTensorMode, device: torch.device) -> nn.Module:
    """Replace every parameter and buffer of ``model`` (on ``meta`` or real) with a fake tensor.

    Shared tensors stay shared: a parameter reached from two modules (GPT-2's ``wte`` and
    ``lm_head``) becomes one fake parameter. ``requires_grad`` and attributes set on parameters
    by libraries (PEFT's markers, ``_is_hf_initialized``…) are carried over. A module with a
    ``fakeify_state(convert)`` method (the quantized stand-ins of
    :mod:`profilers.simulate.quant`) has it called to convert the tensors it holds outside its
    parameters and buffers.
    """
    memo: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            fake = memo.get(id(param))
            if fake is None:
                fake = nn.Parameter(_fake_like(param, mode, device), requires_grad=param.requires_grad)
                for key, value in vars(param).items():
                    if not key.startswith("_") or key == "_is_hf_initialized":
                        try:
                            setattr(fake, key, value)
                        except (AttributeError, TypeError):
                            pass
                memo[id(param)] = fake
            module._parameters[name] = fake  # type: ignore[assignment]
        for name, buf in list(module._buffers.items()):
            if buf is None:
                continue
            fake = memo.get(id(buf))
            if fake is None:
                fake = _fake_like(buf, mode, device)
                memo[id(buf)] = fake
            module._buffers[name] = fake
        fakeify_state = getattr(module, "fakeify_state", None)  # quantized stand-ins' statistics
        if callable(fakeify_state):
            fakeify_state(lambda t: _fake_like(t, mode, device))
    return model


def fake_batch(
    batch: Any, mode: FakeTensorMode, device: torch.device, shadows: ShadowValues | None = None
) -> Any:
    """The same batch as fake tensors on ``device`` (made real first, outside the fake mode)."""

    def convert(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        with unset_fake_temporarily():
            real = x if x.device.type != "meta" else torch.zeros(x.shape, dtype=x.dtype)
            real = real.to("cpu")
        fake: torch.Tensor = mode.from_tensor(real)
        if device.type != "cpu":
            with mode:
                fake = fake.to(device)
        if shadows is not None:
            shadows.remember(fake, real)
        return fake

    return tree_map(convert, batch)


@dataclass
class FakeWorld:
    """The fake mode, the fake device and the known values of one simulated trial."""

    mode: FakeTensorMode
    device: torch.device
    shadows: ShadowValues

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The fake mode with the value follower above it: run fake code inside this."""
        with self.mode, self.shadows:
            yield

    def fakeify(self, model: nn.Module) -> nn.Module:
        """:func:`fakeify_module` onto this world's device."""
        return fakeify_module(model, self.mode, self.device)

    def batch(self, batch: Any) -> Any:
        """:func:`fake_batch`, with the batch's real values remembered."""
        return fake_batch(batch, self.mode, self.device, self.shadows)
