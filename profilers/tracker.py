"""Exact live-tensor accounting of a training step, at the storage level.

A :class:`TensorMemoryTracker` is a ``TorchDispatchMode``: every aten op of the step (forward,
backward, optimizer) passes through it, and each storage an op hands back that the tracker does
not know yet is counted as allocated, with a weak-reference finalizer that counts it as freed
when the storage dies. What was resident before the step (parameters, buffers, optimizer state,
the input batch) is registered up front with its role. The result is the peak of live tensor
bytes and, by replaying the event log, the role of every byte live at that peak.

It counts tensors, not allocator blocks: on CPU that is the exact figure; on CUDA the caching
allocator's rounding comes on top. It works the same under ``FakeTensorMode`` (simulation),
where no real memory exists at all.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, is_traceable_wrapper_subclass
from torch.utils._pytree import tree_flatten

from profilers.records import MemoryBreakdown, Provenance, TensorPeak
from profilers.timeline import MemoryTimeline, build_timeline, memory_viz_snapshot

__all__ = [
    "Role",
    "TensorMemoryTracker",
    "flat_tensors",
    "optimizer_state_tensors",
    "quantization_state_tensors",
    "storages_of",
    "tensors_in",
]

log = logging.getLogger(__name__)


class Role(str, enum.Enum):
    """What a storage holds."""

    PARAMETER = "parameter"
    BUFFER = "buffer"
    GRADIENT = "gradient"
    OPTIMIZER = "optimizer"
    INPUT = "input"
    ACTIVATION = "activation"  # saved activations and temporaries
    COMMUNICATION = "communication"  # a sharded step's all-gather / reduce-scatter buffers


def _storage_of(t: torch.Tensor) -> torch.UntypedStorage | None:
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse, nested, or tensors without storage
        return None


def storages_of(t: torch.Tensor) -> list[torch.UntypedStorage]:
    """The storages that hold ``t``'s bytes: its own, or for a wrapper subclass (an FSDP2 /
    DDP ``DTensor``) those of its inner tensors — a ``DTensor``'s own storage has the global
    shape, its local shard is what this process holds."""
    if is_traceable_wrapper_subclass(t):
        names, _ = t.__tensor_flatten__()  # type: ignore[attr-defined]
        out: list[torch.UntypedStorage] = []
        for name in names:
            inner = getattr(t, name)
            if isinstance(inner, torch.Tensor):
                out.extend(storages_of(inner))
        return out
    storage = _storage_of(t)
    return [] if storage is None else [storage]


def tensors_in(obj: Any) -> list[torch.Tensor]:
    """All tensors in a nested structure (dicts, lists, tuples, HF ``ModelOutput``s)."""
    leaves, _ = tree_flatten(obj)
    return [x for x in leaves if isinstance(x, torch.Tensor)]


def flat_tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs (tuples, lists, dicts of them): a fast
    :func:`tensors_in` for what aten ops take and return."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    out: list[torch.Tensor] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, (tuple, list)):
            stack.extend(reversed(x))
        elif isinstance(x, dict):
            stack.extend(reversed(list(x.values())))
    return out


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor held in an optimizer's per-parameter state."""
    out: list[torch.Tensor] = []
    for state in optimizer.state.values():
        out.extend(tensors_in(dict(state)))
    return out


def _quant_state_tensors(state: Any) -> list[torch.Tensor]:
    out = [t for t in (getattr(state, k, None) for k in ("absmax", "code", "offset")) if isinstance(t, torch.Tensor)]
    nested = getattr(state, "state2", None)
    if nested is not None:
        out.extend(_quant_state_tensors(nested))
    return out


def quantization_state_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """The statistics quantized weights keep beside their parameters: a 4-bit weight's
    ``quant_state`` (absmax, code, offset, nested absmax and code) and an 8-bit layer's row
    scales ``SCB`` (on the weight before the first forward, on ``module.state`` after), as
    bitsandbytes 0.50 holds them and :mod:`profilers.simulate.quant` mirrors them."""
    out: list[torch.Tensor] = []
    for module in model.modules():
        for param in module._parameters.values():
            if param is None:
                continue
            state = getattr(param, "quant_state", None)
            if state is not None:
                out.extend(_quant_state_tensors(state))
            scb = getattr(param, "SCB", None)
            if isinstance(scb, torch.Tensor):
                out.append(scb)
        scb = getattr(getattr(module, "state", None), "SCB", None)
        if isinstance(scb, torch.Tensor):
            out.append(scb)
    return out


# FSDP2's collectives as torch 2.13 calls them from its parameter groups
# (torch/distributed/fsdp/_fully_shard/_fsdp_param_group.py: foreach_all_gather allocates the
# flat all-gather input and output, foreach_reduce the reduce-scatter input and output)
_FSDP_GROUP_MODULE = "torch.distributed.fsdp._fully_shard._fsdp_param_group"
_FSDP_COLLECTIVES = ("foreach_all_gather", "foreach_reduce")


def _watch_fsdp_collectives(tracker: TensorMemoryTracker) -> list[Callable[[], None]]:
    """Make FSDP2's collectives (when FSDP2 is loaded) allocate under the tracker's
    communication role; returns what undoes it."""
    module = sys.modules.get(_FSDP_GROUP_MODULE)
    if module is None:
        return _watch_fsdp_storage_resizes(tracker)
    undo: list[Callable[[], None]] = []
    for name in _FSDP_COLLECTIVES:
        original = getattr(module, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def watched(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with tracker.communicating():
                return _original(*args, **kwargs)

        setattr(module, name, watched)
        undo.append(functools.partial(setattr, module, name, original))
    return undo + _watch_fsdp_storage_resizes(tracker)


# A collective's own scratch (torch 2.13's ProcessGroupGloo reduce-scatter reduces a copy of the
# whole input, seen first when it is split into chunks) belongs to the call's ``Work``, which
# gloo's worker thread also holds until it has finished with it: after ``work.wait()`` returns
# on the main thread, that thread may drop its reference some time later (measured here: 0 to 10
# tensor events later, on a busy CPU, on some ranks and runs). The tracker waits for that release
# before the step goes on, so a rank's peak is the engine's layout (the copy live for the length
# of the call, as :func:`profilers.distributed.gloo_scratch` models it), not the OS scheduler's.
_COLLECTIVES_WITH_SCRATCH = ("reduce_scatter_single",)
SCRATCH_WAIT_S = 2.0  # at most, per call; a copy still held then stays counted (and is logged)


def _watch_collective_scratch(tracker: TensorMemoryTracker) -> list[Callable[[], None]]:
    """Make each synchronous collective of ``torch.distributed`` that allocates scratch wait,
    after it returns, until the backend has released the scratch; returns what undoes it."""
    import torch.distributed as dist

    if not dist.is_available():
        return []
    undo: list[Callable[[], None]] = []
    for name in _COLLECTIVES_WITH_SCRATCH:
        original = getattr(dist, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def waiting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            first = tracker.next_serial
            out = _original(*args, **kwargs)
            if out is None:  # synchronous: the call is over, its scratch is garbage
                tracker.wait_for_release(first)
            return out

        setattr(dist, name, waiting)
        undo.append(functools.partial(setattr, dist, name, original))
    return undo


# FSDP2's flat all-gather outputs (torch 2.13, torch/distributed/fsdp/_fully_shard/): a group's
# ``FSDPParamGroup.unshard`` all-gathers into one flat output held as ``_all_gather_result``;
# ``wait_for_unshard`` copies it out into the unsharded parameters and drops it, unless forward
# keeps it in the shared ``comm_ctx.all_gather_state`` for the next group's copy-out, which that
# group's ``wait_for_unshard`` or the root's ``FSDPState._post_forward`` drops. On CPU every
# all-gather is synchronous (``unshard_async_op`` is False: the result holds no ``Work``), yet
# gloo's worker thread still holds the finished ``Work``, and the output with it, until it takes
# the GIL to release it: on some ranks and runs after the main thread went on (measured: under
# fsdp2+lora the root group's output, wte + wpe + ln_f of tiny GPT-2 = 2,622,464 B at 2 ranks,
# still live when the backward's prefetch of the last block allocated its own, +525,828 B on that
# rank's peak). On a GPU the bytes go back to the caching allocator once FSDP2 drops its
# reference, and the fake process group keeps none; so before each all-gather, after each
# copy-out and at each phase of the step, the tracker waits for the release of every output it
# saw gathered that no parameter group and no ``all_gather_state`` holds any more (once each: one
# still held after ``SCRATCH_WAIT_S`` stays counted, and is logged).


class _AllGatherOutputs:
    """The flat all-gather outputs FSDP2 made under a tracker, and who may hold them."""

    def __init__(self, tracker: TensorMemoryTracker) -> None:
        self.tracker = tracker
        self.groups: dict[int, Any] = {}  # every group seen unsharding, by id (while tracking)
        self.serials: set[int] = set()  # the outputs' storages

    @staticmethod
    def _outputs(group: Any) -> list[torch.Tensor]:
        """The outputs ``group`` and its ``comm_ctx`` hold now: none where torch's private
        attributes are absent (another torch version)."""
        results = [
            getattr(group, "_all_gather_result", None),
            getattr(getattr(getattr(group, "comm_ctx", None), "all_gather_state", None), "all_gather_result", None),
        ]
        own = getattr(group, "_all_gather_output", None)  # the persistent one of a world of 1
        outputs = [getattr(result, "all_gather_output", None) for result in results]
        return [t for t in outputs if isinstance(t, torch.Tensor) and t is not own]

    def gathered(self, group: Any) -> None:
        """``group`` has just unsharded: remember it and its output."""
        self.groups[id(group)] = group
        for t in self._outputs(group):
            self.serials |= self.tracker.serials_of(storages_of(t))

    def wait_for_dropped(self) -> None:
        """Wait until every output FSDP2 no longer holds is freed."""
        if not self.serials:
            return
        held: set[int] = set()
        for group in list(self.groups.values()):
            for t in self._outputs(group):
                held |= self.tracker.serials_of(storages_of(t))
        self.serials &= self.tracker.serials_of_live()
        dropped = self.serials - held
        if dropped:
            self.tracker.wait_for_release(serials=dropped)
            self.serials -= dropped


def _watch_all_gather_outputs(tracker: TensorMemoryTracker) -> list[Callable[[], None]]:
    """Make FSDP2's ``FSDPParamGroup.unshard`` and ``wait_for_unshard`` wait until the
    all-gather outputs FSDP2 dropped are freed (see above; the tracker's ``set_phase`` waits too);
    returns what undoes it. Leaves a method alone where this torch lacks it."""
    group_cls = getattr(sys.modules.get(_FSDP_GROUP_MODULE), "FSDPParamGroup", None)
    if group_cls is None:
        return []
    outputs = _AllGatherOutputs(tracker)
    tracker._all_gather_outputs = outputs
    undo: list[Callable[[], None]] = [functools.partial(setattr, tracker, "_all_gather_outputs", None)]
    original_unshard = getattr(group_cls, "unshard", None)
    if original_unshard is not None:

        @functools.wraps(original_unshard)
        def unshard(group: Any, *args: Any, _original: Any = original_unshard, **kwargs: Any) -> Any:
            outputs.wait_for_dropped()  # before this all-gather allocates its own
            out = _original(group, *args, **kwargs)
            outputs.gathered(group)
            return out

        group_cls.unshard = unshard
        undo.append(functools.partial(setattr, group_cls, "unshard", original_unshard))
    original_wait = getattr(group_cls, "wait_for_unshard", None)
    if original_wait is not None:

        @functools.wraps(original_wait)
        def wait_for_unshard(group: Any, *args: Any, _original: Any = original_wait, **kwargs: Any) -> Any:
            out = _original(group, *args, **kwargs)
            outputs.wait_for_dropped()
            return out

        group_cls.wait_for_unshard = wait_for_unshard
        undo.append(functools.partial(setattr, group_cls, "wait_for_unshard", original_wait))
    return undo


# FSDP2 (torch 2.13, torch/distributed/fsdp/_fully_shard/_fsdp_param.py) keeps each unsharded
# parameter's all-gather output as one tensor for the whole run and frees / re-allocates its
# bytes with ``storage.resize_(0)`` / ``storage.resize_(n)`` (``free_storage`` /
# ``alloc_storage``): no op goes through the dispatcher and the storage never dies, so without
# this the tracker would count every gathered parameter as live from its first all-gather on
# (``reshard_after_forward`` would change nothing). ``_fsdp_param_group`` imports
# ``alloc_storage`` by name, so both modules are patched.
_FSDP_STORAGE_MODULES = (
    "torch.distributed.fsdp._fully_shard._fsdp_param",
    "torch.distributed.fsdp._fully_shard._fsdp_param_group",
)
_FREE, _ALLOC = "free_storage", "alloc_storage"


def _watch_fsdp_storage_resizes(tracker: TensorMemoryTracker) -> list[Callable[[], None]]:
    """Count FSDP2's ``free_storage`` as a free and ``alloc_storage`` as a new allocation of
    the same storage (with the role it had); returns what undoes it."""
    undo: list[Callable[[], None]] = []
    for module_name in _FSDP_STORAGE_MODULES:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        free, alloc = getattr(module, _FREE, None), getattr(module, _ALLOC, None)
        if free is not None:

            def freeing(tensor: torch.Tensor, _original: Any = free) -> None:
                for storage in storages_of(tensor):
                    tracker.resized_away(storage)
                _original(tensor)

            setattr(module, _FREE, freeing)
            undo.append(functools.partial(setattr, module, _FREE, free))
        if alloc is not None:

            def allocating(tensor: torch.Tensor, _original: Any = alloc) -> None:
                _original(tensor)
                for storage in storages_of(tensor):
                    tracker.resized_back(storage)

            setattr(module, _ALLOC, allocating)
            undo.append(functools.partial(setattr, module, _ALLOC, alloc))
    return undo


class TensorMemoryTracker(TorchDispatchMode):
    """Tracks live tensor bytes on one device type while active; see the module docstring.

    Use: register what is resident, enter the mode, run the step (calling :meth:`set_phase` and
    :meth:`note_gradients` at its seams), exit, then read :meth:`result`.
    """

    def __init__(self, device_type: str = "cpu") -> None:
        super().__init__()
        self.device_type = device_type
        self.phase = "forward"
        self._serial_by_id: dict[int, int] = {}  # id(storage) -> serial, while alive
        self._bytes: dict[int, int] = {}  # serial -> bytes
        self._role: dict[int, Role] = {}  # serial -> role (kept after the storage dies)
        self._events: list[int] = []  # +serial = allocated, -serial = freed
        self._finalizers: list[weakref.finalize] = []
        self._next_serial = 1
        self._live_bytes = 0
        self._resident_bytes = 0
        self.peak_bytes = 0
        self._peak_event = 0  # number of events replayed to reach the peak
        self.peak_phase = "forward"
        # for the timeline (profilers.timeline): the op that made each storage, and where in
        # the event log each phase began
        self._op: Any = None  # the aten op being dispatched, while its outputs are tracked
        self._op_of: dict[int, Any] = {}  # serial -> op (absent: registered before the step)
        self._phase_marks: list[tuple[int, str]] = [(0, "forward")]
        self._registered_events = 0  # leading events that are the resident storages
        self.new_role = Role.ACTIVATION  # the role of storages ops create (see _communicating)
        self._unpatch: list[Callable[[], None]] = []
        self._resized: set[int] = set()  # serials freed in place by a storage resize
        self._resized_role: dict[int, Role] = {}  # id(storage) -> role, while resized away
        self._all_gather_outputs: _AllGatherOutputs | None = None  # FSDP2's, while active

    # -- registration ------------------------------------------------------------------------

    def _track(self, storage: torch.UntypedStorage, role: Role) -> int | None:
        if storage.device.type != self.device_type:
            return None
        key = id(storage)
        serial = self._serial_by_id.get(key)
        if serial is not None:
            return serial
        nbytes = int(storage.nbytes())
        if nbytes == 0:
            return None
        serial = self._next_serial
        self._next_serial += 1
        self._serial_by_id[key] = serial
        self._bytes[serial] = nbytes
        self._role[serial] = role
        if self._op is not None:
            self._op_of[serial] = self._op
        self._events.append(serial)
        self._live_bytes += nbytes
        self._finalizers.append(weakref.finalize(storage, self._freed, key, serial))
        if self._live_bytes > self.peak_bytes:
            self.peak_bytes = self._live_bytes
            self._peak_event = len(self._events)
            self.peak_phase = self.phase
        return serial

    def _freed(self, key: int, serial: int) -> None:
        if serial in self._resized:  # already counted free when its bytes were resized away
            return
        if self._serial_by_id.get(key) == serial:
            del self._serial_by_id[key]
        self._live_bytes -= self._bytes[serial]
        self._events.append(-serial)

    @property
    def next_serial(self) -> int:
        """The serial the next storage tracked will get."""
        return self._next_serial

    def serials_of_live(self) -> set[int]:
        """The serials of every tracked storage live now."""
        return set(list(self._serial_by_id.values()))  # list(): atomic against a freeing thread

    def serials_of(self, storages: Iterable[torch.UntypedStorage]) -> set[int]:
        """The serials of those of ``storages`` tracked and live now."""
        return {s for s in (self._serial_by_id.get(id(st)) for st in storages) if s is not None}

    def wait_for_release(
        self, first: int | None = None, *, serials: set[int] | None = None, timeout_s: float = SCRATCH_WAIT_S
    ) -> None:
        """Wait (at most ``timeout_s``) until every storage tracked from serial ``first`` on (or
        each of ``serials``) has been freed: another thread still holds them for a moment (see
        :func:`_watch_collective_scratch`)."""
        start = time.monotonic()
        deadline = start + timeout_s
        waited = False
        while True:
            live = list(self._serial_by_id.values())  # list(): atomic against the freeing thread
            held = [s for s in live if (s in serials if serials is not None else first is not None and s >= first)]
            if not held:
                if waited:
                    log.debug("waited %.2f ms for another thread to free a collective's storages",
                              (time.monotonic() - start) * 1e3)  # fmt: skip
                return
            waited = True
            if time.monotonic() >= deadline:
                log.debug("storages %s still held %.1f s after their collective returned", held, timeout_s)
                return
            time.sleep(0.0005)  # lets the holding thread take the GIL and free them

    def resized_away(self, storage: torch.UntypedStorage) -> None:
        """``storage``'s bytes were released in place (``resize_(0)``): count them freed; a
        later :meth:`resized_back` counts the storage as a new allocation with the same role."""
        key = id(storage)
        serial = self._serial_by_id.pop(key, None)
        if serial is None or int(storage.nbytes()) == 0:
            if serial is not None:
                self._serial_by_id[key] = serial
            return
        self._resized.add(serial)
        self._resized_role[key] = self._role[serial]
        self._live_bytes -= self._bytes[serial]
        self._events.append(-serial)

    def resized_back(self, storage: torch.UntypedStorage) -> None:
        """``storage`` got its bytes back (``resize_(n)``): a new allocation."""
        self._track(storage, self._resized_role.pop(id(storage), self.new_role))

    def register(self, tensors: Iterable[torch.Tensor], role: Role) -> None:
        """Count these tensors' storages as resident now, with ``role`` (first role wins)."""
        for t in tensors:
            for storage in storages_of(t):
                self._track(storage, role)
        self._resident_bytes = self._live_bytes
        self._registered_events = len(self._events)

    def register_training_state(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        batch: Any,
    ) -> None:
        """Register everything resident at the start of a step."""
        self.register((p.detach() for p in model.parameters()), Role.PARAMETER)
        self.register(quantization_state_tensors(model), Role.PARAMETER)
        self.register(model.buffers(), Role.BUFFER)
        self.register((p.grad for p in model.parameters() if p.grad is not None), Role.GRADIENT)
        if optimizer is not None:
            self.register(optimizer_state_tensors(optimizer), Role.OPTIMIZER)
        self.register(tensors_in(batch), Role.INPUT)
        buffers = getattr(model, "communication_buffers", None)  # DDP's gradient buckets
        if callable(buffers):
            self.register(buffers(), Role.COMMUNICATION)

    def note_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Mark the storages now held in ``.grad`` as gradients (call after each backward)."""
        for p in params:
            if p.grad is None:
                continue
            for storage in storages_of(p.grad):
                serial = self._track(storage, Role.GRADIENT)
                if serial is not None:
                    self._role[serial] = Role.GRADIENT

    def note_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Mark the optimizer's state storages (needed when state is created during the step)."""
        for t in optimizer_state_tensors(optimizer):
            for storage in storages_of(t):
                serial = self._track(storage, Role.OPTIMIZER)
                if serial is not None:
                    self._role[serial] = Role.OPTIMIZER

    def relabel(self, tensors: Iterable[torch.Tensor], role: Role) -> int:
        """Give these tensors' live, tracked storages ``role``: for state an engine allocated
        inside the step whose role is known only afterwards (DeepSpeed's partitions). Storages
        never seen are left out (they were made before tracking, or outside the dispatcher);
        returns their bytes."""
        unseen = 0
        for t in tensors:
            for storage in storages_of(t):
                if storage.device.type != self.device_type:
                    continue
                serial = self._serial_by_id.get(id(storage))
                if serial is None:
                    unseen += int(storage.nbytes())
                else:
                    self._role[serial] = role
        return unseen

    def restart_peak(self) -> None:
        """Start a new step here: the peak restarts from the live bytes, which become the
        step's resident bytes (the events before stay, for the breakdowns)."""
        self.peak_bytes = self._live_bytes
        self._peak_event = len(self._events)
        self.peak_phase = self.phase
        self._resident_bytes = self._live_bytes

    def set_phase(self, phase: str) -> None:
        if self._all_gather_outputs is not None:  # FSDP2's forward ends by dropping one
            self._all_gather_outputs.wait_for_dropped()
        self.phase = phase
        if self._phase_marks[-1][1] != phase:
            self._phase_marks.append((len(self._events), phase))

    # -- the dispatch hook ---------------------------------------------------------------------

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        self._op = func
        for t in tensors_in(out):
            for storage in storages_of(t):  # a DTensor's local shard, not its global shape
                self._track(storage, self.new_role)
        self._op = None
        return out

    def __enter__(self) -> TensorMemoryTracker:
        self._unpatch = (
            _watch_fsdp_collectives(self) + _watch_collective_scratch(self) + _watch_all_gather_outputs(self)
        )
        return super().__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for undo in self._unpatch:
                undo()
            self._unpatch = []

    @contextlib.contextmanager
    def communicating(self) -> Iterator[None]:
        """Storages made inside count as communication buffers (until a later note says they
        became gradients: FSDP2's sharded gradient is a view of its reduce-scatter output)."""
        before, self.new_role = self.new_role, Role.COMMUNICATION
        try:
            yield
        finally:
            self.new_role = before

    def close(self) -> None:
        """Stop listening for frees (call once the numbers are read)."""
        for fin in self._finalizers:
            fin.detach()
        self._finalizers.clear()

    # -- results -----------------------------------------------------------------------------

    def breakdown_at_peak(self) -> MemoryBreakdown:
        """Replay the event log to the peak and split the live bytes there by role."""
        return self.breakdown_at(self._peak_event)

    def breakdown_at(self, events: int) -> MemoryBreakdown:
        """Replay the first ``events`` events of the log and split the live bytes by role."""
        live: set[int] = set()
        for ev in self._events[:events]:
            if ev > 0:
                live.add(ev)
            else:
                live.discard(-ev)
        by_role = {role: 0 for role in Role}
        for serial in live:
            by_role[self._role[serial]] += self._bytes[serial]
        return MemoryBreakdown(
            parameter_bytes=by_role[Role.PARAMETER],
            buffer_bytes=by_role[Role.BUFFER],
            gradient_bytes=by_role[Role.GRADIENT],
            optimizer_state_bytes=by_role[Role.OPTIMIZER],
            input_bytes=by_role[Role.INPUT],
            activation_bytes=by_role[Role.ACTIVATION],
            communication_buffer_bytes=by_role[Role.COMMUNICATION],
        )

    def breakdown_now(self) -> MemoryBreakdown:
        """The live bytes now, by role."""
        return self.breakdown_at(len(self._events))

    def timeline(self, max_samples: int = 2000, top: int = 10) -> MemoryTimeline:
        """Live bytes by category over the step so far (see :mod:`profilers.timeline`)."""
        ops = {serial: str(op) for serial, op in self._op_of.items()}
        return build_timeline(
            self._events, self._bytes, {k: v.value for k, v in self._role.items()},
            self._phase_marks, ops, max_samples=max_samples, top=top, start=self._registered_events,
        )  # fmt: skip

    def memory_viz_snapshot(self) -> dict[str, Any]:
        """The step so far as a ``torch.cuda.memory._snapshot()`` dict (for memory_viz)."""
        ops = {serial: str(op) for serial, op in self._op_of.items()}
        return memory_viz_snapshot(
            self._events, self._bytes, {k: v.value for k, v in self._role.items()}, ops,
            resident=self._registered_events,
        )  # fmt: skip

    def result(self, provenance: Provenance = Provenance.MEASURED) -> TensorPeak:
        breakdown = self.breakdown_at_peak()
        if breakdown.total_bytes != self.peak_bytes:  # the replay must agree with the counter
            raise AssertionError(
                f"tracker replay {breakdown.total_bytes} B != running peak {self.peak_bytes} B"
            )
        return TensorPeak(
            peak_bytes=self.peak_bytes,
            breakdown=breakdown,
            resident_before_step_bytes=self._resident_bytes,
            peak_phase=self.peak_phase,
            provenance=provenance,
        )
