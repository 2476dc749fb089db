"""The investigation file's schema: strict like the experiment's (unknown keys refused, with the
allowed keys), paths relative to the file.

    name: smollm2-config-validation
    question: Is the model viable for config validation at 60% accuracy?
    threshold: {metric: accuracy, min: 0.6}
    steps:
      - {name: prompts, experiment: ../experiments/prompt_ab.yaml, hypothesis: H1}
      - name: temperature
        experiment: ../experiments/temperature_sweep.yaml
        use: {prompt: {from: prompts, pick: best}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from runner.config.schema import Strict, Threshold

Hypothesis = Literal["H1", "H2", "H3", "H4", "H5", "H6"]


class Use(Strict):
    """Where an axis's value comes from: the value an earlier step picked."""

    from_: str = Field(alias="from", description="The name of an earlier step.")
    pick: Literal["best"] = Field("best", description="How the value is chosen from that step's results.")


class Step(Strict):
    name: str = Field(min_length=1, description="Unique within the investigation; `use` entries name it.")
    experiment: Path = Field(description="The experiment file, relative to the investigation file.")
    hypothesis: Hypothesis | None = Field(
        None, description="The analysis's hypothesis this step tests.")
    use: dict[str, Use] = Field(default_factory=dict,
                                description="axis -> {from: earlier step, pick: best}: the axis is replaced.")


class Investigation(Strict):
    name: str = Field(description="Shown in reports.")
    question: str = Field(description="What the investigation answers, in one sentence.")
    threshold: Threshold = Field(description="The question's bar, e.g. {metric: accuracy, min: 0.6}.")
    steps: list[Step] = Field(min_length=1)
    results_dir: Path | None = Field(None, description="Where picks.json goes; default results/<file stem>.")

    source_path: Path = Field(default=Path("investigation.yaml"), exclude=True)

    def resolve(self, p: Path) -> Path:
        """A path of the file, relative to the file's folder."""
        return p if p.is_absolute() else self.source_path.parent / p

    def picks_path(self) -> Path:
        """results/<file stem>/picks.json beside the file (or under results_dir)."""
        folder = self.resolve(self.results_dir) if self.results_dir else (
            self.source_path.parent / "results" / self.source_path.stem)
        return folder / "picks.json"

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def index(self, name: str) -> int | None:
        return next((i for i, s in enumerate(self.steps) if s.name == name), None)
