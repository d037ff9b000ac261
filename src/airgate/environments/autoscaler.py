"""How many Celery workers an environment should run, as MWAA decides it.

Enough workers for the tasks queued and running (each worker takes `per_worker` at once),
within MinWorkers and MaxWorkers. More are started as soon as they are needed; fewer only
after the need has stayed lower for a quiet period, so a DAG whose tasks come in waves
doesn't pay a worker's start for every wave. Pure logic: the clock and the counts are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_QUIET_SECONDS", "WorkerScaler"]

DEFAULT_QUIET_SECONDS = 120.0


@dataclass(slots=True)
class WorkerScaler:
    minimum: int
    maximum: int
    per_worker: int
    quiet_seconds: float = DEFAULT_QUIET_SECONDS
    _lower_since: float | None = None  # since when fewer workers would have done

    def needed(self, tasks: int) -> int:
        """Workers for `tasks` queued and running tasks, within the bounds."""
        return min(self.maximum, max(self.minimum, math.ceil(tasks / self.per_worker)))

    def target(self, running: int, tasks: int, now: float) -> int:
        """How many workers to run now, given `running` workers and `tasks` queued or
        running. Outside the bounds (just changed by UpdateEnvironment) the bounds win at
        once; below the need, the need wins at once; above it, only after the quiet
        period."""
        needed = self.needed(tasks)
        if running < self.minimum or running > self.maximum or needed >= running:
            self._lower_since = None
            return max(needed, min(running, self.maximum))
        if self._lower_since is None:
            self._lower_since = now
        if now - self._lower_since >= self.quiet_seconds:
            self._lower_since = None
            return needed
        return running

    def bound(self, minimum: int, maximum: int) -> None:
        """New MinWorkers and MaxWorkers (UpdateEnvironment), taking effect at the next
        `target`."""
        self.minimum, self.maximum = minimum, max(minimum, maximum)
