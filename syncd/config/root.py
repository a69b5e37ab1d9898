"""The whole config (`Config`) and what the rest of syncd asks of it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr

from syncd.config.apis import ApisSection
from syncd.config.catalog import (
    CatalogBuild,
    CatalogSection,
    assemble_catalog,
    inline_variants,
    skus_for_channel,
)
from syncd.config.fields import Section
from syncd.config.problems import describe
from syncd.config.sections import (
    ChannelsSection,
    DaemonSection,
    HandoverSection,
    SourcesSection,
)
from syncd.model import Catalog, ChannelRule


class Config(Section):
    """A validated syncd config. Build it with `syncd.config.load_config`.

    `load_config` also resolves the API secrets (``config.apis.ankorstore.secret(
    "client_secret")``) and reads the CSV catalog (`catalog_model`).
    """

    daemon: DaemonSection = Field(default_factory=DaemonSection)
    apis: ApisSection = Field(default_factory=ApisSection)
    sources: SourcesSection = Field(default_factory=SourcesSection)
    handover: HandoverSection = Field(default_factory=HandoverSection)
    channels: ChannelsSection = Field(default_factory=ChannelsSection)
    catalog: CatalogSection = Field(default_factory=CatalogSection)

    _build: CatalogBuild | None = PrivateAttr(default=None)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file this config was loaded from (``None`` when built from text)."""
        return self._source

    def catalog_model(self) -> Catalog:
        """Variants (CSV and inline), bundles and prepacks as `syncd.model.Catalog`."""
        return self._catalog_build().catalog

    def channel_rules(self) -> list[ChannelRule]:
        """One rule per *enabled* channel; ``skus`` from each item's ``channels`` column."""
        sku_channels = self._catalog_build().sku_channels
        return [
            ChannelRule(
                channel=name,
                locations=tuple(section.locations),
                buffer=section.buffer,
                percentage=section.percentage,
                cap=section.cap,
                pack_rounding=section.pack_rounding,
                skus=skus_for_channel(sku_channels, name),
            )
            for name, section in self.channels.enabled().items()
        ]

    def attach_loaded(self, build: CatalogBuild, source: Path | None) -> None:
        """Record what `load_config` read besides the TOML (the loader calls this once)."""
        self._build = build
        self._source = source

    def _catalog_build(self) -> CatalogBuild:
        if self._build is None:
            # A Config validated directly (tests) has only its inline catalog.
            if self.catalog.csv is not None:
                raise RuntimeError("catalog.csv is only read by syncd.config.load_config")
            build = assemble_catalog(inline_variants(self.catalog), self.catalog)
            if build.findings:
                details = "; ".join(f"{describe(f.where)}: {f.message}" for f in build.findings)
                raise ValueError(f"invalid catalog: {details}")
            self._build = build
        return self._build
