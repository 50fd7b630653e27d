"""The frontend: load a model, capture it with torch.export, translate the
ATen graph into kiln IR and lift known patterns (see capture.py, lift.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kiln.errors import KilnError
from kiln.frontend.capture import export_model, translate
from kiln.frontend.lift import LiftReport, lift
from kiln.frontend.loader import LoadedModel, load_model
from kiln.ir.aten_policy import check_aten_op, generic_ops
from kiln.ir.core import IRError, Module
from kiln.ir.verifier import verify_module


@dataclass
class Imported:
    module: Module
    loaded: LoadedModel
    translated_generic: dict[str, int]  # ATen ops left generic by translation, before lifting
    lift_report: LiftReport

    def generic_ops(self) -> dict[str, int]:
        """ATen ops still generic (``kiln.aten``) after lifting."""
        return generic_ops(self.module)


def import_model(ref: str, seed: int = 0, progress: Callable[[str], None] | None = None) -> Imported:
    say = progress or (lambda s: None)
    say(f"loading {ref}")
    loaded = load_model(ref, seed)
    say("capturing with torch.export (dynamic batch and sequence)")
    ep, params = export_model(loaded.model, loaded.max_positions, loaded.config.vocab_size)
    module, generic = translate(ep, params)
    say("lifting ATen ops into kiln ops")
    report = lift(module)
    c = loaded.config
    module.meta.update({
        "family": loaded.family,
        "vocab_size": int(c.vocab_size),
        "max_positions": loaded.max_positions,
        "bos_token_id": getattr(c, "bos_token_id", None),
        "eos_token_id": getattr(c, "eos_token_id", None),
    })

    for p in module.programs.values():  # what lifting left generic must be allowed to run (docs/security.md)
        for op in p.walk("kiln.aten"):
            try:
                check_aten_op(op.attrs["target"], op.attrs.get("args", []), op.attrs.get("kwargs", {}))
            except IRError as e:
                raise KilnError(f"{ref} uses {op.attrs['target']}, which kiln neither lifts into its own ops nor "
                                f"runs as a generic op: {e}") from None
    try:
        verify_module(module)
    except IRError as e:
        raise KilnError(f"the frontend produced invalid IR for {ref} (a kiln bug; please report it): {e}") from None
    return Imported(module, loaded, generic, report)
