"""Explanations written out from a value's basis: the steps `syncd explain` shows (pure).

Allocation (`syncd.allocation.core`) keeps, per published value, only the
numbers and references behind it (`Value`): a single's pool, reservations
and pack; a bundle's components and their bases. `explain` turns one of them,
with the rule it was computed under and the balances that fed its pool, back
into the full `Explanation` -- the same steps, details and result allocation
would have produced had it written every explanation out. It runs for the
value someone asks about, never for the whole catalog.

Steps, in order: ``pool``, ``reservations``, ``clamp`` (net below zero) --
or, for a bundle, ``bundle`` -- then ``buffer``, ``percentage``, ``cap``,
``pack``, ``clamp`` and ``own_orders``. Rules left at their neutral value
(buffer 0, 100 %, no cap, pack size 1) add no step.
"""

from __future__ import annotations

from collections.abc import Mapping

from syncd.allocation.core import BundleBasis, Value
from syncd.allocation.rules import RuleChain
from syncd.model import ChannelRule, Explanation, ExplanationStep, Sku


def explain(
    rule: ChannelRule,
    value: Value,
    inputs: Mapping[str, int],
    chain: RuleChain | None = None,
) -> Explanation:
    """The explanation of ``value``, computed under ``rule``, with ``inputs`` as its inputs.

    ``inputs`` maps each balance that fed the pool (``location/status/lot``)
    and each reservation (``reserved:<channel>:<order_ref>``) to its units;
    for a bundle each key is prefixed with the single it belongs to
    (``PY:activeants/available/``). See `balance_inputs`. ``chain``: the
    rule's `RuleChain`, when many values of one rule are explained.
    """
    channel, sku, _, own, pool, reserved, pack, basis = value
    chain = chain or RuleChain(rule)
    steps: list[ExplanationStep]
    limiting: Sku | None = None
    if isinstance(basis, BundleBasis):
        parts = ", ".join(f"{c} {base} // {m} = {base // m}" for c, m, base in basis.components)
        limiting = basis.limiting
        detail = f"min({parts}), limited by {limiting}"
        steps = [ExplanationStep("bundle", 0, pool, detail)]
        start = pool
    else:
        steps = [ExplanationStep("pool", 0, pool, "available at " + ", ".join(rule.locations))]
        start = pool
        if reserved:
            steps.append(
                ExplanationStep(
                    "reservations", start, start - reserved, "open orders on these locations"
                )
            )
            start -= reserved
        if start < 0:
            steps.append(ExplanationStep("clamp", start, 0, "net stock cannot go below zero"))
            start = 0
    quantity, rules = chain.steps(start, pack)
    steps += rules
    if own:
        detail = f"plus {channel}'s own open orders, which {channel} subtracts itself"
        steps.append(ExplanationStep("own_orders", quantity, quantity + own, detail))
        quantity += own
    return Explanation(channel, sku, inputs, tuple(steps), limiting, quantity)


def balance_inputs(value: Value, balances: Mapping[Sku, list[tuple[str, int]]]) -> dict[str, int]:
    """A value's ``inputs``: ``balances`` (SKU -> (key, units) that fed its pool) and its orders.

    ``balances`` holds the ``location/status/lot`` keys at the rule's
    locations, sorted by key, for the value's SKU (a bundle: for its leaves).
    """
    sku, basis = value[1], value[7]
    if isinstance(basis, BundleBasis):
        held: dict[Sku, list[tuple[str, int]]] = {}
        for leaf, label, units in basis.held:
            held.setdefault(leaf, []).append((label, units))
        inputs = {}
        for leaf in basis.leaves:  # each single's balances, then its orders
            for key, units in (*balances.get(leaf, ()), *held.get(leaf, ())):
                inputs[f"{leaf}:{key}"] = units
        return inputs
    inputs = dict(balances.get(sku, ()))
    for label, units in basis:
        inputs[label] = inputs.get(label, 0) + units
    return inputs
