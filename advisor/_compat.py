"""Old module paths, kept importable as deprecated aliases of their new homes.

``import advisor.cuts`` gives the module :mod:`advisor.plans.cuts` itself (the same objects),
with a ``DeprecationWarning`` that names the new path, as ``torch.cuda.memory_cached`` forwards
to ``memory_reserved``. ``advisor.simulate`` and ``advisor.sweep`` are the API functions, not
modules: their old modules live on as :mod:`advisor.engines.simulate` and
:mod:`advisor.engines.sweep`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

__all__ = ["MOVED", "install"]

# old path -> new home(s); with several, the old module's names are gathered from all of them
MOVED: dict[str, str | tuple[str, ...]] = {
    "advisor.errors": "advisor.core.errors",
    "advisor.units": "advisor.core.units",
    "advisor.io": "advisor.core.io",
    "advisor.render": ("advisor.report.trial", "advisor.core.tables"),
    "advisor.gpus": "advisor.catalog.gpus",
    "advisor.presets": ("advisor.catalog.presets", "advisor.models.presets"),
    "advisor.cuts": "advisor.plans.cuts",
    "advisor.estimate": "advisor.engines.estimate",
    "advisor.overheads": "advisor.engines.overheads",
    "advisor.flops": "advisor.engines.flops",
    "advisor.growth": "advisor.engines.growth",
    "advisor.convergence": ("advisor.engines.convergence", "advisor.report.runs"),
    "advisor.workload": "advisor.recommend.workload",
    "advisor.snippets": "advisor.report.snippets",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names and loads them as the new modules."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        homes = MOVED[spec.name]
        names = (homes,) if isinstance(homes, str) else homes
        warnings.warn(
            f"{spec.name} is deprecated: it moved to {' and '.join(names)}; import from there "
            "(or from advisor)",
            DeprecationWarning,
            stacklevel=2,
        )
        if len(names) == 1:
            return importlib.import_module(names[0])
        merged = ModuleType(spec.name, f"Deprecated alias of {', '.join(names)}.")
        public: list[str] = []
        for name in names:
            module = importlib.import_module(name)
            exported = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
            for attr in exported:
                setattr(merged, attr, getattr(module, attr))
                public.append(attr)
        merged.__all__ = public  # type: ignore[attr-defined]
        return merged

    def exec_module(self, module: ModuleType) -> None:
        """The new module ran when it was imported; nothing more to do."""


_FINDER = _MovedModules()


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
