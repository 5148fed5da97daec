"""SUS: rank unlabeled cases by sample-level uncertainty and take them in rounds, most reliable first."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["RoundSchedule", "rank_cases", "unlabeled_loss_weight"]


def rank_cases(uncertainty: Mapping[str, float]) -> list[str]:
    """Case ids sorted by ascending U(x); ties broken by case id so the ranking is deterministic."""
    return sorted(uncertainty, key=lambda case: (uncertainty[case], case))


@dataclass(frozen=True)
class RoundSchedule:
    """Round r trains on the most reliable ``fractions[r]`` of the ranking for ``epoch_shares[r]`` of the epochs.

    Attributes:
        fractions: non-decreasing fractions of the unlabeled pool, the last one usually 1.0.
        epoch_shares: relative lengths of the rounds (normalised to the trainer's ``num_epochs``).
    """

    fractions: tuple[float, ...] = (0.5, 1.0)
    epoch_shares: tuple[float, ...] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if not self.fractions or len(self.fractions) != len(self.epoch_shares):
            raise ValueError(f"need one epoch share per round fraction, got {self.fractions} and {self.epoch_shares}")
        if any(not 0 < f <= 1 for f in self.fractions) or list(self.fractions) != sorted(self.fractions):
            raise ValueError(f"round fractions must be non-decreasing and in (0, 1], got {self.fractions}")
        if any(s <= 0 for s in self.epoch_shares):
            raise ValueError(f"round epoch shares must be positive, got {self.epoch_shares}")

    @property
    def num_rounds(self) -> int:
        return len(self.fractions)

    def round_start_epochs(self, num_epochs: int) -> list[int]:
        """First epoch of each round; round 0 starts at epoch 0."""
        if num_epochs < self.num_rounds:
            raise ValueError(f"{self.num_rounds} SUS rounds need at least as many epochs, got {num_epochs}")
        total = sum(self.epoch_shares)
        starts, elapsed = [], 0.0
        for share in self.epoch_shares:
            # floor keeps every round at least one epoch long when num_epochs >= num_rounds
            starts.append(max(len(starts), math.floor(num_epochs * elapsed / total)))
            elapsed += share
        return starts

    def round_at_epoch(self, epoch: int, num_epochs: int) -> int:
        return max(r for r, start in enumerate(self.round_start_epochs(num_epochs)) if start <= epoch)

    def select(self, ranking: Sequence[str], round_index: int) -> list[str]:
        """The cases of one round: a prefix of the ranking, at least one case."""
        count = max(1, math.ceil(self.fractions[round_index] * len(ranking)))
        return list(ranking[:count])


def unlabeled_loss_weight(epoch: int, num_epochs: int, lambda_max: float, rampup_fraction: float) -> float:
    """lambda(t): the sigmoid-shaped ramp-up exp(-5 (1 - t)^2) of Laine & Aila (2017), then lambda_max."""
    rampup_epochs = rampup_fraction * num_epochs
    if rampup_epochs <= 0 or epoch >= rampup_epochs:
        return lambda_max
    t = epoch / rampup_epochs
    return lambda_max * math.exp(-5.0 * (1.0 - t) ** 2)
