"""Open-model load: shapes, the arrival schedule and the engine (`drive`) that sends it.

`drive` and `LoadSummary` are imported lazily so a worker process starts without the spec models.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LoadSummary", "drive", "rate_at"]


def __getattr__(name: str) -> Any:
    if name == "drive":
        from chaoskit.load.engine import drive
        return drive
    if name == "LoadSummary":
        from chaoskit.load.summary import LoadSummary
        return LoadSummary
    if name == "rate_at":
        from chaoskit.load.shapes import rate_at
        return rate_at
    raise AttributeError(name)
