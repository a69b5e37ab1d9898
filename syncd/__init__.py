"""syncd: publishes a brand's warehouse stock to its marketplaces, safely."""

__version__ = "0.1.0"
