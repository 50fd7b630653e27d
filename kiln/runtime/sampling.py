"""Sampling settings and the next-token choice, shared by plain and speculative decoding.

This module sits below both ``kiln.runtime.generate`` (the runtime and its plain decoding loop) and
``kiln.runtime.speculative`` (the draft -> verify strategy) and imports neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from kiln.errors import KilnError
from kiln.ir.ops_spec import filtered_probs

__all__ = ["MIN_TEMPERATURE", "Sampling", "check_sampling", "filtered_probs", "sample_next"]

# Below this, softmax(logits / T) overflows float32 for ordinary logits (NaN probabilities); a
# temperature this small is greedy decoding in all but name, so it decodes greedily.
MIN_TEMPERATURE = 1e-4


def check_sampling(temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> float:
    """Check the sampling settings; the temperature to use (0, greedy, for one below ``MIN_TEMPERATURE``)."""
    for name, v in (("max-new-tokens", max_new_tokens), ("top-k", top_k)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise KilnError(f"{name} must be an integer, got {v!r}")
    for name, v in (("temperature", temperature), ("top-p", top_p)):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise KilnError(f"{name} must be a number, got {v!r}")
    if not math.isfinite(temperature) or not math.isfinite(top_p):
        raise KilnError("temperature and top-p must be finite numbers")
    if temperature < 0:
        raise KilnError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise KilnError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise KilnError(f"top-k must be >= 0, got {top_k}")
    if max_new_tokens < 0:
        raise KilnError(f"max-new-tokens must be >= 0, got {max_new_tokens}")
    return 0.0 if temperature < MIN_TEMPERATURE else float(temperature)


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row of logits [B, V]: argmax when temperature is 0 (or below ``MIN_TEMPERATURE``)."""
    if temperature < MIN_TEMPERATURE:
        return logits.argmax(-1)
    probs = filtered_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass(frozen=True, eq=False)
class Sampling:
    """A request's sampling settings (already checked: ``temperature`` is 0 for greedy decoding) and
    its random generator (None: torch's global generator). Every random draw of a request goes
    through ``generator``, in the order the decoding loop makes them, so a seed fixes the tokens."""

    temperature: float
    top_k: int
    top_p: float
    generator: torch.Generator | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        """The next token of each row of ``logits`` [B, V] (``sample_next`` with these settings)."""
        return sample_next(logits, self.temperature, self.top_k, self.top_p, self.generator)

    @cached_property
    def program_args(self) -> torch.Tensor:
        """The settings as the ``verify``/``spec_step`` programs take them: [temperature, top_p, top_k] float32."""
        return torch.tensor([self.temperature, self.top_p, float(self.top_k)], dtype=torch.float32)

    def draw_seed(self) -> torch.Tensor:
        """A seed [1] for a program's own random draws, taken from the request's generator."""
        return torch.randint(0, 2**62, (1,), generator=self.generator)
