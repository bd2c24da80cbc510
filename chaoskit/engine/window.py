"""Whether a run may start now: its schedule's allowed window and the freeze (its own, or the
one every experiment respects, $CHAOSKIT_FREEZE). Refusals name the window and when it opens."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from chaoskit.errors import NotAllowedNow
from chaoskit.schedules import check_window
from chaoskit.spec.schedule import Schedule

FREEZE_ENV = "CHAOSKIT_FREEZE"


def refusal(schedule: Schedule | None, now: datetime | None = None,
            env: Mapping[str, str] | None = None) -> str | None:
    """None when a run may start now, else why not (with the window and when it opens)."""
    schedule = schedule or Schedule()
    freeze = schedule.freeze or (os.environ if env is None else env).get(FREEZE_ENV) or None
    if schedule.window is None and freeze is None:
        return None
    return check_window(schedule.window, schedule.timezone, now or datetime.now(UTC),
                        freeze=freeze, approved=schedule.approved)


def require_allowed(name: str, schedule: Schedule | None, now: datetime | None = None,
                    env: Mapping[str, str] | None = None) -> None:
    """Raise NotAllowedNow (nothing started) when `name` may not run now."""
    why = refusal(schedule, now, env)
    if why is not None:
        raise NotAllowedNow(f"{name}: {why}",
                            hint="run it inside its window (schedule.window); inside a freeze "
                                 "only experiments with schedule.approved: true run; "
                                 "--ignore-window overrides this once, and the journal says so")
