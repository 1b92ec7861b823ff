"""A problem found in the repo-of-record, reported as ``path:line: Kind/name: message`` (``path:line:column:``
when the column is known)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str
    subject: str | None = None  # "Kind/name" once the document says what it is
    severity: str = "error"  # or "warning": reported, but the policies still load and run
    column: int = 0  # 1-based, when known (YAML syntax errors); 0: the line alone

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (f":{self.column}" if self.column else "")
        if self.severity != "error":
            where += f": {self.severity}"
        return f"{where}: {self.subject}: {self.message}" if self.subject else f"{where}: {self.message}"


class PolicyError(Exception):
    """The repo-of-record could not be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
