"""The upstream spec defects the conformance checks allow for, each named and sourced.

Nothing is ignored wholesale. A defect is handled in one of two ways:

- **by a finding rule**: ``operations``, ``part`` and ``finding`` say which
  findings it explains; :meth:`SpecChecker.findings
  <tests.conformance.specs.SpecChecker.findings>` drops exactly those and
  counts them under the defect's name (``SpecChecker.allowed``), so a report
  shows how often each defect fired;
- **elsewhere** (``handled_by`` says where): mostly a patch to the spec as
  it is loaded, used where the defect is in a schema every exchange of an
  operation goes through, so a finding rule would have to swallow too much.

Each ``source`` points at the SOURCES.md entry (../shared/specs/SOURCES.md)
or, for defects found here, at the seed or brief line that shows the spec is
the one that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnownDefect:
    name: str
    source: str
    operations: frozenset[str] = frozenset()
    """operationIds whose findings this defect may explain."""
    part: str = ""
    """``request`` or ``response``."""
    finding: re.Pattern[str] | None = None
    """Matched (``fullmatch``) against the finding's message."""
    handled_by: str = ""
    """For a defect patched on load: the function that does it."""

    def allows(self, operation: str, part: str, message: str) -> bool:
        return (
            self.finding is not None
            and operation in self.operations
            and part == self.part
            and self.finding.fullmatch(message) is not None
        )


KNOWN_DEFECTS: tuple[KnownDefect, ...] = (
    # --- explained findings ------------------------------------------------------------
    KnownDefect(
        "variant-list-pagination-undeclared",
        # Not in SOURCES.md. The list is paginated (its 200 schema has meta.page
        # and links, and its own example links carry page[after]/page[limit]),
        # and the prose gives every list endpoint page[limit|before|after]
        # (seed 000 L49-107), but the operation declares none of them: brief
        # seed-ankorstore-catalog L170. syncd sends page[limit] and follows
        # links.next, which carry page[after].
        "brief seed-ankorstore-catalog L170; seed 000 L49-107",
        operations=frozenset({"list-product-variants-with-stock"}),
        part="request",
        finding=re.compile(r"query parameter 'page\[(limit|after|before)\]' is not declared"),
    ),
    # --- handled elsewhere: a patch on load, or a check the spec cannot make ---------------
    KnownDefect(
        "astral-patch-state-example",
        "SOURCES.md 'Known defects upstream': the ASTRAL PATCH stock/state example fails "
        "its own schema (locationType, unitMultiplier)",
        handled_by="specs.relax_astral_patch_state",
    ),
    KnownDefect(
        "operations-type-prose-alias",
        "SOURCES.md 'Known defects upstream': the prose example of POST /api/v1/operations "
        "says type 'productVariants', the schema and every response 'product-variants'",
        # The schema gives the type no enum, so validation cannot tell the two apart.
        handled_by="the simulator refuses 'productVariants' with a 422 unless told to accept "
        "aliases (syncd/sandbox/ankorstore.py, 'Bulk type')",
    ),
    KnownDefect(
        "astral-security-cookie-only",
        "SOURCES.md 'Known defects upstream': ASTRAL securitySchemes lists only a cookie",
        handled_by="specs.SpecChecker.findings: security is not validated (the simulator "
        "tests check 401s themselves)",
    ),
    KnownDefect(
        "rate-limit-429-in-prose-only",
        "seed 000 L218-226: 429 and its headers are documented in prose, on no operation",
        handled_by="specs._check_429: headers and a JSON:API errors body instead",
    ),
    KnownDefect(
        "openapi-3.0-leftovers",
        "nullable / format:int in OAS 3.1 documents; the seed says 'string or null' "
        "(seed 000 L13297-13322, L1549-1552)",
        handled_by="specs.normalise_openapi_31",
    ),
    KnownDefect(
        "variant-list-included-forbidden",
        "include=product is documented but the list's 200 schema forbids 'included'",
        handled_by="specs.allow_included_on_variant_list",
    ),
    KnownDefect(
        "fabric-counters-type",
        "SOURCES.md fabric 'Known defect': counters values are typed object, fabric's "
        "examples send integers",
        handled_by="traffic_check.fix_fabric_counters",
    ),
)


def explaining(operation: str, part: str, message: str) -> KnownDefect | None:
    """The known defect that explains a finding, if any."""
    return next((d for d in KNOWN_DEFECTS if d.allows(operation, part, message)), None)
