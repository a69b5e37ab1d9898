"""The options every syncd command that reads a config shares: ``--config`` and
``--credentials-dir``.

``--config`` defaults to ``$SYNCD_CONFIG``, then ``/etc/syncd/syncd.toml``
(the path the shipped unit uses); ``--help`` shows which one applies now.

``--credentials-dir DIR`` stands in for the ``$CREDENTIALS_DIRECTORY`` that
systemd sets for a unit with ``LoadCredential=``: a config that names its
secrets the systemd way (``client_secret_file = "ankorstore"`` or
``"%d/ankorstore"``) can then be used from a shell, e.g. ``syncd once
--dry-run`` with a copy of the secrets. It is exported as
``$CREDENTIALS_DIRECTORY`` for the rest of the process, so the config loader
and a daemon's reload (SIGHUP) resolve credentials exactly as under systemd.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from syncd.config.credentials import CREDENTIALS_DIRECTORY

DEFAULT_CONFIG = "/etc/syncd/syncd.toml"
CONFIG_ENV = "SYNCD_CONFIG"


def default_config_path(environ: Mapping[str, str] | None = None) -> str:
    """``$SYNCD_CONFIG`` when set (and not empty), else ``/etc/syncd/syncd.toml``."""
    env = os.environ if environ is None else environ
    return env.get(CONFIG_ENV) or DEFAULT_CONFIG


def _config_help(environ: Mapping[str, str]) -> str:
    if environ.get(CONFIG_ENV):
        now = f"${CONFIG_ENV} = {environ[CONFIG_ENV]}"
    else:
        now = f"${CONFIG_ENV} is not set, so {DEFAULT_CONFIG}"
    # argparse %-formats help strings: a path may contain '%'.
    text = f"the TOML config (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}; now: {now})"
    return text.replace("%", "%%")


def _credentials_help(environ: Mapping[str, str]) -> str:
    current = environ.get(CREDENTIALS_DIRECTORY)
    now = f"now {current}" if current else "not set now"
    text = (
        'where secrets named the systemd way (client_secret_file = "ankorstore" or '
        f'"%d/ankorstore") are read from (default: ${CREDENTIALS_DIRECTORY}, '
        f"which systemd's LoadCredential= sets; {now})"
    )
    return text.replace("%", "%%")


def config_options(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """A parent parser (``parents=[...]``) adding ``--config`` and ``--credentials-dir``."""
    env = os.environ if environ is None else environ
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("configuration")
    group.add_argument("--config", metavar="PATH", default=None, help=_config_help(env))
    group.add_argument(
        "--credentials-dir", metavar="DIR", default=None, help=_credentials_help(env)
    )
    return common


def apply_config_options(
    args: argparse.Namespace, environ: MutableMapping[str, str] | None = None
) -> str | None:
    """Fill in ``args.config``'s default and export ``--credentials-dir``.

    Returns a message for the user when ``--credentials-dir`` is unusable,
    else ``None``. Commands without these options are left alone.
    """
    env = os.environ if environ is None else environ
    positional = getattr(args, "config_path", None)
    if positional is not None:
        # `syncd check-config PATH`, the older form, still works.
        if args.config is not None and args.config != positional:
            return f"two configs given ({positional} and --config {args.config}); give one"
        args.config = positional
    if getattr(args, "config", "unset") is None:
        args.config = default_config_path(env)
    directory = getattr(args, "credentials_dir", None)
    if directory is None:
        return None
    path = Path(directory)
    if not path.is_dir():
        return f"--credentials-dir {directory}: not a directory"
    env[CREDENTIALS_DIRECTORY] = str(path.absolute())
    return None
