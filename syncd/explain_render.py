"""Text for `syncd explain`: an ``explain`` reply as a person reads it (pure).

The reply's shape is documented in :mod:`syncd.explain`. Rendering never
fails on a field it does not know or that is missing: a newer daemon may
send more, an older one less.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

_INDENT = "  "


def render_explain(reply: Mapping[str, Any]) -> str:
    """A multi-line explanation (no trailing newline)."""
    sku = str(reply.get("sku", "?"))
    origin = reply.get("from")
    where = {"daemon": "the running daemon", "ledger": "the ledger file"}.get(str(origin), "?")
    lines = [f"SKU {sku} (from {where}, {_time(reply.get('generated_at'))})", ""]
    channels = _records(reply.get("channels"))
    if not channels:
        lines += [f"{_INDENT}no channel publishes a number for {sku} yet", ""]
    for channel in channels:
        lines += [*_channel(channel), ""]
    lines += _reservations(_records(reply.get("reservations")))
    lines += _sources(_records(reply.get("sources")), reply.get("generated_at"))
    lines += _postings(_records(reply.get("postings")))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _channel(channel: Mapping[str, Any]) -> list[str]:
    name = channel.get("channel", "?")
    published = channel.get("published")
    head = f"{name}: publishes {published}"
    acknowledged = channel.get("acknowledged")
    if acknowledged is None:
        head += " (not acknowledged by the channel yet)"
    elif acknowledged != published:
        head += f" (the channel last acknowledged {acknowledged}; the new value is pending)"
    else:
        head += " (acknowledged)"
    lines = [head]
    push = channel.get("last_push")
    if isinstance(push, Mapping):
        detail = f"{_INDENT}last push: {push.get('quantity')} {push.get('status')}"
        detail += f" at {_time(push.get('at'))}"
        if push.get("request_id"):
            detail += f", request {push['request_id']}"
        if push.get("reply"):
            detail += f": {_clip(push['reply'], 160)}"
        lines.append(detail)
    inputs = channel.get("inputs")
    if isinstance(inputs, Mapping) and inputs:
        lines.append(f"{_INDENT}inputs (units):")
        width = max(len(str(key)) for key in inputs)
        for key, value in inputs.items():
            note = _input_note(str(key))
            # Reservations are subtracted from the pool: show them that way.
            shown = f"-{value}" if note and isinstance(value, int) else str(value)
            lines.append(f"{_INDENT * 2}{key!s:<{width}}  {shown:>8}{note}")
    components = _records(channel.get("components"))
    if components:
        limiting = channel.get("limiting_component")
        lines.append(f"{_INDENT}bundle components (units per bundle):")
        for part in components:
            mark = "  <- limiting" if part.get("sku") == limiting else ""
            lines.append(
                f"{_INDENT * 2}{part.get('sku')}: {part.get('available')} available"
                f" // {part.get('per_bundle')} = {part.get('complete')} complete bundle(s){mark}"
            )
    steps = _records(channel.get("steps"))
    if steps:
        lines.append(f"{_INDENT}steps:")
        width = max(len(str(step.get("rule", ""))) for step in steps)
        for step in steps:
            rule = str(step.get("rule", "?"))
            change = f"{step.get('before')} -> {step.get('after')}"
            if rule in ("pool", "bundle"):
                change = str(step.get("after"))
            detail = f"   {step.get('detail')}" if step.get("detail") else ""
            lines.append(f"{_INDENT * 2}{rule:<{width}}  {change:>12}{detail}")
    lines.append(f"{_INDENT}= {channel.get('result', published)}")
    return lines


def _input_note(key: str) -> str:
    # Reservation inputs are ``[component:]reserved:<channel>:<order>``.
    parts = key.split(":")
    if "reserved" in parts:
        at = parts.index("reserved")
        if len(parts) >= at + 3:
            return f"   held by {parts[at + 1]} order {':'.join(parts[at + 2 :])}"
    return ""


def _reservations(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return ["Open reservations: none", ""]
    lines = ["Open reservations:"]
    for row in rows:
        lines.append(
            f"{_INDENT}{row.get('channel')} order {row.get('order_ref')}: {row.get('sku')}"
            f" {row.get('quantity')} unit(s) from {row.get('location')}"
            f" since {_time(row.get('since'))}"
        )
    return [*lines, ""]


def _sources(rows: Sequence[Mapping[str, Any]], generated_at: object) -> list[str]:
    if not rows:
        return []
    reference = _parse(generated_at)
    lines = ["Sources (last successful read):"]
    for row in rows:
        when = row.get("last_success")
        age = ""
        parsed = _parse(when)
        if parsed is not None and reference is not None:
            age = f" ({(reference - parsed).total_seconds():.0f} s earlier)"
        lines.append(f"{_INDENT}{row.get('feed')}: {_time(when) if when else 'never'}{age}")
    return [*lines, ""]


def _postings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    shown = [row for row in rows if not row.get("counter")]
    if not shown:
        return []
    lines = ["Ledger postings behind these balances (newest first):"]
    for row in shown:
        quantity = row.get("quantity")
        signed = f"{quantity:+d}" if isinstance(quantity, int) else str(quantity)
        units = f"{signed} unit(s)"
        batches = row.get("batches")
        if batches is not None:
            units += f" ({batches} batch(es) x {row.get('unit_multiplier')})"
        reference = f", order {row['ref']}" if row.get("ref") else ""
        lines.append(
            f"{_INDENT}txn {row.get('txn_id')} {row.get('sku')} {row.get('account')} {units}:"
            f" {row.get('kind')} by {row.get('source')}, observed {_time(row.get('observed_at'))}"
            f"{reference}"
        )
    return [*lines, ""]


def _records(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _time(value: object) -> str:
    parsed = _parse(value)
    if parsed is None:
        return str(value) if value else "?"
    return parsed.strftime("%Y-%m-%d %H:%M:%S%z")


def _clip(value: object, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
