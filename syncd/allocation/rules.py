"""Channel rules: checking them, and applying buffer, percentage, cap and packs (pure).

The rule steps (step 4 of `syncd.allocation`) are computed in two places: by
allocation, as plain numbers, for every published value; and again when an
explanation is rendered (`syncd.allocation.explanation`), step by step, for
the one value someone asks about. Both use `RuleChain`, so the two can never
disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from syncd.model import ChannelRule, ExplanationStep


class RuleError(ValueError):
    """Channel rules that cannot be applied; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid channel rules: " + "; ".join(problems))
        self.problems = problems


def validate_rules(rules: Iterable[ChannelRule]) -> list[str]:
    """Every reason ``rules`` cannot be applied; empty when they are fine.

    A rule without locations would publish zero for the whole catalog, so it
    is refused rather than obeyed.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        name = rule.channel
        if not name:
            problems.append("a channel rule has an empty channel name")
        if name in seen:
            problems.append(f"channel {name!r} has more than one rule")
        seen.add(name)
        if not rule.locations:
            problems.append(f"channel {name!r} has no locations")
        for pattern in rule.locations:
            if not pattern or "*" in pattern[:-1]:
                problems.append(
                    f"channel {name!r} location {pattern!r}: use an id or a prefix ending in '*'"
                )
        if rule.buffer < 0:
            problems.append(f"channel {name!r} buffer {rule.buffer} is negative")
        if not (math.isfinite(rule.percentage) and 0 <= rule.percentage <= 100):
            problems.append(f"channel {name!r} percentage {rule.percentage} is not within 0-100")
        if rule.cap is not None and rule.cap < 0:
            problems.append(f"channel {name!r} cap {rule.cap} is negative")
    return problems


def matches(location: str, patterns: tuple[str, ...]) -> bool:
    """True when ``location`` is one of ``patterns`` (an id, or a prefix ending in ``*``)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if location.startswith(pattern[:-1]):
                return True
        elif location == pattern:
            return True
    return False


class RuleChain:
    """Buffer, percentage, cap, whole packs and clamp of one rule (step 4).

    `value` is the number alone, cached per (input, pack): stock levels
    repeat a lot across a catalog. `steps` is the same computation written
    out for an explanation.
    """

    def __init__(self, rule: ChannelRule) -> None:
        self.rule = rule
        share = Fraction(str(rule.percentage))
        # Exact decimal arithmetic: 100 % is the identity and 33.3 % of 1000 is 333.
        self.share = None if share == 100 else (share.numerator, share.denominator * 100)
        self.neutral = not rule.buffer and self.share is None and rule.cap is None
        """Only whole packs apply (and the clamp, which a base >= 0 never needs)."""
        self._values: dict[tuple[int, int], int] = {}

    def value(self, value: int, pack: int) -> int:
        """The published number for a base of ``value`` sold in packs of ``pack``."""
        found = self._values.get((value, pack))
        if found is None:
            found = self._values[value, pack] = self.steps(value, pack)[0]
        return found

    def steps(self, value: int, pack: int) -> tuple[int, list[ExplanationStep]]:
        """The published number and the steps that led to it (neutral rules add none)."""
        rule = self.rule
        steps: list[ExplanationStep] = []
        if rule.buffer:
            after = max(0, value - rule.buffer)
            steps.append(ExplanationStep("buffer", value, after, f"hold back {rule.buffer} units"))
            value = after
        if self.share is not None:
            numerator, denominator = self.share
            after = value * numerator // denominator
            detail = f"{rule.percentage}% rounded down"
            steps.append(ExplanationStep("percentage", value, after, detail))
            value = after
        if rule.cap is not None:
            after = min(value, rule.cap)
            steps.append(ExplanationStep("cap", value, after, f"at most {rule.cap} units"))
            value = after
        if pack > 1:
            after = value - value % pack
            steps.append(ExplanationStep("pack", value, after, f"whole packs of {pack} units"))
            value = after
        if value < 0:  # unreachable with validated rules; kept so nothing negative escapes
            steps.append(ExplanationStep("clamp", value, 0, "never below zero"))
            value = 0
        return value, steps
