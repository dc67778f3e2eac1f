"""The case registry: every test case is a function registered with :func:`case`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from h2spec.connection import Connection

CaseFunction = Callable[[Connection], str | None]


class Skip(Exception):
    """The case does not apply to this server (e.g. it advertises no limit to exceed)."""


@dataclass(frozen=True)
class Case:
    """One conformance case.

    ``section`` is the RFC section ("6.5.2", "hpack-4.2", "generic"), ``number`` its position
    within that section; ``requirement`` quotes or paraphrases the RFC text being checked.
    """

    section: str
    number: int
    title: str
    expects: str
    requirement: str
    run: CaseFunction
    handshake: bool = True
    settings: Sequence[tuple[int, int]] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return f"{self.section}/{self.number}"

    def describe(self) -> str:
        return f"{self.id} {self.title} -> expects {self.expects}"


CASES: list[Case] = []


def case(
    section: str,
    title: str,
    expects: str,
    requirement: str,
    *,
    handshake: bool = True,
    settings: Sequence[tuple[int, int]] = (),
) -> Callable[[CaseFunction], CaseFunction]:
    """Register a case; cases of a section are numbered in the order they are declared."""

    def register(function: CaseFunction) -> CaseFunction:
        number = 1 + sum(1 for c in CASES if c.section == section)
        CASES.append(
            Case(section, number, title, expects, requirement, function, handshake, settings)
        )
        return function

    return register
