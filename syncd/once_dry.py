"""`syncd once --dry-run`: the plan a real run would execute, printed instead of executed.

The dry run works on a copy of the ledger (:mod:`syncd.ledger_copy`), reads
the sources into it, reads every channel back exactly as a real run does at
start (corrections land in the copy only), then asks the engine for each
channel's plan (:meth:`syncd.engine.Engine.push_channel` with
``dry_run=True``, the same :func:`syncd.engine.plan.plan_push` a real run
executes) and prints it. Nothing is written to a channel or to the live
ledger.

The table lists every value the plan would send, with what the channel shows
now (the field syncd writes: Ankorstore ``stockQuantity``, fabric's
inventory); notes below it say what would be held, blocked, parked or left
waiting. ``--json`` prints the same as data, with the full plan under
``plan``: the list `syncd once --json` prints under ``actions`` once it has
executed them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from syncd.assembly import Assembly
from syncd.channels.base import LiveValue
from syncd.engine.plan import Action, Block, Hold, Park, Send, Wait, describe


@dataclass(slots=True)
class PlannedChange:
    """One value a real run would send, beside what the channel shows now."""

    channel: str
    sku: str
    live: int | None
    desired: int

    @property
    def change(self) -> str:
        if self.live is None:
            return "set"
        if self.desired == self.live:
            return "unchanged"
        return "decrease" if self.desired < self.live else "increase"


async def plan_channels(
    assembly: Assembly, skip: Mapping[str, str], *, confirm: bool
) -> dict[str, list[Action]]:
    """Each channel's plan (channels whose read-back failed are left out, as a real run does).

    With ``confirm`` (``--dry-run --confirm``) a held channel's plan goes on
    with what the run would send after confirming the hold, as
    `syncd once --confirm` does.
    """
    plans: dict[str, list[Action]] = {}
    for name in assembly.channels:
        if name in skip:
            continue
        cycle = await assembly.engine.push_channel(name, dry_run=True, confirm=confirm)
        plans[name] = cycle.actions
    return plans


def changes(
    plans: Mapping[str, Sequence[Action]], live: Mapping[str, Mapping[str, LiveValue]]
) -> list[PlannedChange]:
    """Every value the plans would send, in the order they would go out."""
    found: list[PlannedChange] = []
    for name, actions in plans.items():
        shown = live.get(name, {})
        for action in actions:
            if not isinstance(action, Send):
                continue
            for update in action.updates:
                value = shown.get(update.sku)
                now = value.written if value is not None else None
                found.append(PlannedChange(name, update.sku, now, update.quantity))
    return found


def notes(
    plans: Mapping[str, Sequence[Action]], unverified: Mapping[str, str]
) -> dict[str, list[str]]:
    """Per channel, why a real run would not send everything now."""
    found: dict[str, list[str]] = {}
    for name, why in unverified.items():
        found.setdefault(name, []).append(
            f"would push nothing: the channel could not be read back ({why})"
        )
    for name, actions in plans.items():
        for action in actions:
            match action:
                case Block():
                    line = f"would push nothing: {'; '.join(action.reasons)}"
                case Hold():
                    line = f"would be held until confirmed: {'; '.join(action.reasons)}"
                case Wait():
                    line = action.reason
                case Park():
                    line = f"{action.sku} would be parked: {action.reason}"
                case _:
                    continue
            found.setdefault(name, []).append(line)
    return found


def render(
    plans: Mapping[str, Sequence[Action]],
    live: Mapping[str, Mapping[str, LiveValue]],
    unverified: Mapping[str, str],
    *,
    as_json: bool,
) -> str:
    rows = changes(plans, live)
    interlocks = notes(plans, unverified)
    if as_json:
        document = {
            "dry_run": True,
            "changes": [asdict(row) | {"change": row.change} for row in rows],
            "interlocks": interlocks,
            "plan": {
                name: [describe(action, name) for action in actions]
                for name, actions in plans.items()
            },
        }
        return json.dumps(document, indent=2)
    lines = [f"dry run: {name}: {why}" for name, reasons in interlocks.items() for why in reasons]
    if not rows:
        return "\n".join(["dry run: every channel already shows what syncd would publish", *lines])
    width = max(len(r.sku) for r in rows)
    table = [f"{'channel':<11} {'sku':<{width}} {'now':>7} {'would be':>9}  change"]
    for r in rows:
        now = "-" if r.live is None else str(r.live)
        table.append(f"{r.channel:<11} {r.sku:<{width}} {now:>7} {r.desired:>9}  {r.change}")
    decreases = sum(1 for r in rows if r.change == "decrease")
    table.append(
        f"dry run: {len(rows)} value(s) to send, {decreases} decrease(s); nothing was written"
    )
    return "\n".join(table + lines)
