"""`syncd check-config --config PATH`: validate a config the way the daemon would load it.

``syncd check-config PATH`` (the path as an argument) works too.
"""

from __future__ import annotations

import argparse
import sys

from syncd.config.load import load_config
from syncd.config.problems import ConfigError

EXIT_OK = 0
EXIT_INVALID = 2


def cli_check_config(args: argparse.Namespace) -> int:
    """Print ``PATH: ok (...)`` and return 0, or one line per problem on stderr and return 2."""
    path: str = args.config
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    catalog = config.catalog_model()
    channels = len(config.channels.enabled())
    print(
        f"{path}: ok ({len(catalog.variants) - len(catalog.bundles)} variants, {len(catalog.bundles)} bundles, "
        f"{channels} channels)"
    )
    return EXIT_OK
