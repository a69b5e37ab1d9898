"""Rules that span sections: what pydantic's per-field validation cannot see.

- every enabled integration has its ``[apis.*]`` section;
- every location a channel or an order source names is provided by an
  enabled stock source;
- a source cannot be stale between two of its own polls.

Pure: no I/O.
"""

from __future__ import annotations

from syncd.config.apis import ApisSection
from syncd.config.problems import Finding, TomlKey
from syncd.config.root import Config


def needed_apis(config: Config) -> dict[str, list[str]]:
    """API name -> the enabled sections that use it (``sources.astral``, ``handover``...).

    Each source and channel section names its API (``SourceSection.API``); the
    handover asks Active Ants about the order feeds' orders. APIs come in the
    order of ``[apis]``'s keys, their users in file-schema order.
    """
    users: list[tuple[str, str]] = [
        (section.API, f"sources.{name}") for name, section in config.sources.enabled().items()
    ]
    users += [
        (section.API, f"channels.{name}") for name, section in config.channels.enabled().items()
    ]
    if config.handover.match == "external_reference" and config.sources.order_feeds():
        users.append((config.handover.API, "handover"))
    needed: dict[str, list[str]] = {api: [] for api in ApisSection.model_fields}
    for api, user in users:
        needed[api].append(user)
    return {api: using for api, using in needed.items() if using}


def check_config(config: Config) -> list[Finding]:
    """Cross-section findings, in file order of the sections they concern."""
    findings: list[Finding] = []
    present = config.apis.present()
    for api, users in needed_apis(config).items():
        if api not in present:
            # Point at each user: a missing section has no line of its own. The handover
            # is left out: without Active Ants it is switched off, with a warning at start.
            findings.extend(
                Finding(
                    TomlKey(tuple(user.split("."))), f"needs section [apis.{api}], which is missing"
                )
                for user in users
                if user != "handover"
            )

    sources = config.sources.enabled()
    for name, source in sources.items():
        if source.stale_after <= source.poll_interval:
            findings.append(
                Finding(
                    TomlKey(("sources", name, "stale_after")),
                    f"must be longer than poll_interval ({source.poll_interval:g} s), "
                    "or the source counts as stale between two polls",
                )
            )

    locations = _LocationSet(config)
    for name, channel in config.channels.enabled().items():
        for index, ref in enumerate(channel.locations):
            problem = locations.problem(ref)
            if problem:
                findings.append(Finding(TomlKey(("channels", name, "locations", index)), problem))
    fabric_orders = config.sources.fabric_orders
    if fabric_orders is not None and fabric_orders.enabled and config.apis.fabric is not None:
        for placeholder in ("brand_id", "retailer_id"):
            if "{" + placeholder + "}" in fabric_orders.orders_path and not getattr(
                config.apis.fabric, placeholder
            ):
                findings.append(
                    Finding(
                        TomlKey(("sources", "fabric_orders", "orders_path")),
                        f"uses {{{placeholder}}} but [apis.fabric] has no {placeholder}",
                    )
                )
    for name, order_source in config.sources.order_feeds().items():
        ref = order_source.fulfilled_from
        where = TomlKey(("sources", name, "fulfilled_from"))
        if "*" in ref:
            findings.append(Finding(where, "name one location, not a pattern"))
        elif problem := locations.problem(ref):
            findings.append(Finding(where, problem))
    return findings


class _LocationSet:
    """The locations enabled stock sources provide: an exact name and an id prefix."""

    def __init__(self, config: Config) -> None:
        activeants, astral = config.sources.activeants, config.sources.astral
        self.exact = activeants.location if activeants and activeants.enabled else None
        self.prefix = astral.location_prefix if astral and astral.enabled else None

    def problem(self, ref: str) -> str | None:
        """Why ``ref`` matches no provided location, or ``None`` when it does."""
        name, colon, _ = ref.partition(":")
        if ref == "*":
            matches = self.exact is not None or self.prefix is not None
        elif colon:
            matches = name == self.prefix
        else:
            matches = name == self.exact
        if matches:
            return None
        if not colon and name == self.prefix:
            return f"ASTRAL locations are named {name}:<id>; write '{name}:*' for all of them"
        known = [repr(self.exact)] if self.exact else []
        known += [repr(f"{self.prefix}:*")] if self.prefix else []
        available = f"enabled: {', '.join(known)}" if known else "no stock source is enabled"
        return f"no enabled stock source provides location {ref!r} ({available})"
