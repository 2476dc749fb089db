"""A model variant: one model at one quantization, the unit a backend loads and the outer loop of a plan."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """One model at one quantization: the unit a backend loads, and the outer loop of a plan."""

    model: str
    quantization: str | None
    model_id: str
    # What identifies the weights for hashing: declared source + quantization, or the server's id.
    identity: str

    @property
    def label(self) -> str:
        """How people name it: `smollm2-135m Q8_0`."""
        return self.model + (f" {self.quantization}" if self.quantization else "")
