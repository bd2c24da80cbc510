"""`type: money`: the system's own money checks, each a query returning the rows that violate it.

    probe: {type: money, check: books-balance}          # guardrail: abort_when "> 0"

The value is the number of violating rows (0 when money is safe); the first few of them are
journaled with the sample, so a verdict can show what went wrong, not only how often.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.probes.books import Books, database_url
from chaoskit.spec.units import PositiveDuration

EXAMPLES = 3
ROW_LIMIT = 10_000  # a check that returns more has found plenty; counting stops there


class MoneyProbeConfig(ProbeConfig):
    check: str = Field(description="a check the system declares under `checks:`")
    database: str | None = Field(default=None, description="default: the check's database")
    timeout: PositiveDuration = 5.0


def shown(row: dict[str, Any]) -> dict[str, str]:
    """A row as text, for a reader (decimals and times as they print)."""
    return {str(k): str(v) for k, v in row.items()}


class MoneyProbe:
    """Counts the rows a declared money check returns."""

    type_name: ClassVar[str] = "money"
    Config: ClassVar[type[ProbeConfig]] = MoneyProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, MoneyProbeConfig)
        self.config = config
        checks = context.system.checks if context.system else {}
        if config.check not in checks:
            raise ProbeError(f"the system declares no money check '{config.check}'",
                             hint=f"declared: {', '.join(checks) or 'none'}; add it under "
                                  "`checks:` in the system")
        self.spec = checks[config.check]
        self.books = Books(database_url(config.database or self.spec.database, context.system,
                                        context.platform), config.timeout)
        self.examples: list[dict[str, str]] = []

    async def sample(self) -> float:
        rows = await self.books.rows(self.spec.query, limit=ROW_LIMIT)
        self.examples = [shown(r) for r in rows[:EXAMPLES]]
        return float(len(rows))

    def detail(self) -> dict[str, Any] | None:
        """The first violating rows of the last sample (journaled with it)."""
        return {"examples": self.examples} if self.examples else None

    def unit(self) -> str:
        return "rows"

    async def close(self) -> None:
        await self.books.close()
