"""When a scale of the coarse-to-fine loop has done enough.

A fixed count of evaluations per scale spends the same at every scale whether it still pays
or not. ``Plateau`` ends a scale once its best loss has fallen by less than a fraction over the
last evaluations; the stylize loop then gives the evaluations it did not use to the last scale
(``Settings.scale_stop``), where the picture is judged.
"""
from __future__ import annotations

from collections import deque


class Plateau:
    """``enough(loss)`` for the optimizers: true once the best loss so far fell by less than
    ``threshold`` (relative) over the last ``window`` evaluations."""

    def __init__(self, threshold: float, window: int = 10):
        self.threshold = threshold
        self.bests = deque(maxlen=window + 1)

    def __call__(self, loss: float) -> bool:
        best = min(loss, self.bests[-1]) if self.bests else loss
        self.bests.append(best)
        if len(self.bests) < self.bests.maxlen:
            return False
        return self.bests[0] - best < self.threshold * abs(best)
