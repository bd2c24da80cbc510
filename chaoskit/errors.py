"""The errors users can cause, each with a stable code, a location where one applies, and a fix.

    ChaoskitError                      exit 4 unless a subclass says otherwise
    ├── SpecError                      exit 2: the experiment file is invalid
    │   (carries a list of Problem: path, line, column, field, message, hint)
    ├── ScheduleError (CK120)          exit 2: a cron, window, freeze or time zone is unreadable
    ├── NotAllowedNow (CK130)          exit 4: outside the allowed window, or inside a freeze
    ├── PreflightError                 exit 4: a target is unreachable, out of scope, or forbidden
    ├── PlatformError                  exit 4: the lab / cluster could not do what was asked
    │   └── PermissionMissing          exit 4: a verb on a resource (or root) is missing
    ├── FaultError                     exit 4: a driver could not inject or revert
    │   └── ResidueError               exit 4: the residue audit found a fault still in place
    ├── ProbeError                     exit 4: a probe could not measure (unreachable, bad query)
    ├── LoadError                      exit 4: the load engine could not run its schedule
    └── JournalError                   exit 4: a journal is missing, unreadable or not ours

Every message says what is wrong and what to do about it. Tracebacks are for bugs, not for these.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, pointing at where it is."""

    path: str
    line: int
    column: int
    message: str
    hint: str = ""
    field: str = ""

    def render(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}; {self.hint}" if self.hint else f"{where}: {what}"


class ChaoskitError(Exception):
    """Base of every error a user can cause; `code` is stable, `hint` says what to do."""

    code = "CK000"
    exit_status = 4

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error[{self.code}]: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class SpecError(ChaoskitError):
    code = "CK100"
    exit_status = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0].render() if problems else "invalid experiment"
        super().__init__(first)

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class NotAllowedNow(ChaoskitError):
    """A run or a game day refused by its schedule: outside its window, or in a freeze."""

    code = "CK130"


class PreflightError(ChaoskitError):
    code = "CK200"


class PlatformError(ChaoskitError):
    code = "CK300"


class PermissionMissing(PlatformError):
    code = "CK310"


class FaultError(ChaoskitError):
    code = "CK400"


class ResidueError(FaultError):
    code = "CK410"


class ProbeError(ChaoskitError):
    code = "CK500"


class LoadError(ChaoskitError):
    code = "CK600"


class JournalError(ChaoskitError):
    code = "CK700"


@dataclass
class ProblemList:
    """Collects problems while validating so a file reports all of them at once."""

    path: str
    items: list[Problem] = field(default_factory=list)

    def add(self, line: int, column: int, message: str, hint: str = "", fld: str = "") -> None:
        self.items.append(Problem(self.path, line, column, message, hint, fld))

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(sorted(self.items, key=lambda p: (p.line, p.column)))
