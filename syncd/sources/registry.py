"""Every source a config enables: stock first, then the order feeds.

Stock sources come first so a `syncd once` run books the warehouse figures
before the reservations that are netted against them.
"""

from syncd.sources.orders_registry import build_order_sources
from syncd.sources.stock import build_stock_sources

__all__ = ["build_order_sources", "build_stock_sources"]
