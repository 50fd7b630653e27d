"""What a pass is: a dataclass with a ``name``, its options as fields, and
``apply(module) -> bool`` (changed or not). Passes count their rule matches in
``self.stats`` and record choices worth keeping (what was fused, which weights
were made) in ``self.decisions``; the pass manager copies both into the
artifact's manifest. Passes are registered by name with ``@register``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from kiln.ir.core import Module


@dataclass
class Pass:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    stats: Counter = field(default_factory=Counter, init=False, repr=False, compare=False)
    decisions: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def apply(self, module: Module) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}


PASSES: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    if not cls.name or cls.name in PASSES:
        raise ValueError(f"pass {cls.__name__} needs a unique name (got {cls.name!r})")
    PASSES[cls.name] = cls
    return cls
