"""`syncd files`: the files an operator installs beside syncd, out of the installed package.

A wheel or ``pipx`` install has no checkout to copy ``systemd/`` and
``config/`` from, so those files ship inside the package (``syncd/deploy/``,
links to the checkout's copies, resolved when the wheel is built) and this
command lists them, prints one, or writes them all into a directory::

    syncd files                          # what ships and where each file goes
    syncd files --print syncd.service    # one file on stdout
    syncd files --to /tmp/syncd-files    # all of them, refusing to overwrite

Exit status: 0 done, 1 when ``--to`` would overwrite a file (nothing is
written; ``--force`` replaces), 2 for an unknown name or conflicting options.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

EXIT_OK = 0
EXIT_EXISTS = 1
EXIT_USAGE = 2

UNIT_COMMAND = "/usr/local/bin/syncd"
"""Where the shipped units expect syncd (their ``ExecStart=``)."""

SHIPPED: dict[str, tuple[str, str]] = {
    "syncd.service": (
        "/etc/systemd/system/syncd.service",
        "the hardened systemd unit: one syncd on this host",
    ),
    "syncd@.service": (
        "/etc/systemd/system/syncd@.service",
        "the template unit: one syncd per brand (syncd@BRAND)",
    ),
    "syncd.sysusers": ("/etc/sysusers.d/syncd.conf", "the syncd service account"),
    "syncd.example.toml": ("/etc/syncd/syncd.toml", "the example config, every key documented"),
    "catalog.csv": ("/etc/syncd/catalog.csv", "the example catalog the example config reads"),
}
"""name -> (where it usually goes, what it is)."""


def shipped_file(name: str) -> Traversable:
    """The packaged file ``name`` (one of `SHIPPED`)."""
    if name not in SHIPPED:
        raise KeyError(name)
    return files("syncd").joinpath("deploy", name)


def _listing() -> str:
    width = max(len(name) for name in SHIPPED)
    lines = [
        f"{name:<{width}}  {what} (usually {where})" for name, (where, what) in SHIPPED.items()
    ]
    lines.append("syncd files --print NAME prints one; syncd files --to DIR writes them all")
    return "\n".join(lines)


def _write_all(directory: Path, *, force: bool) -> int:
    targets = {name: directory / name for name in SHIPPED}
    existing = [path for path in targets.values() if path.exists()]
    if existing and not force:
        for path in existing:
            print(f"syncd files: {path} exists (--force replaces it)", file=sys.stderr)
        print("syncd files: nothing written", file=sys.stderr)
        return EXIT_EXISTS
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in targets.items():
        path.write_bytes(shipped_file(name).read_bytes())
        path.chmod(0o644)
        print(f"{path}  ->  {SHIPPED[name][0]}")
    here = shutil.which("syncd")
    if here is not None and Path(here).resolve() != Path(UNIT_COMMAND).resolve():
        print(
            f"note: the units run {UNIT_COMMAND}; this syncd is {here} "
            f"(ln -s {here} {UNIT_COMMAND}, or override ExecStart= in a drop-in)"
        )
    return EXIT_OK


def cli_files(args: argparse.Namespace) -> int:
    show: str | None = args.show
    target: str | None = args.to
    if show is not None and target is not None:
        print("syncd files: give --print NAME or --to DIR, not both", file=sys.stderr)
        return EXIT_USAGE
    if show is not None:
        if show not in SHIPPED:
            print(
                f"syncd files: no shipped file {show!r}; one of: {', '.join(SHIPPED)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        sys.stdout.buffer.write(shipped_file(show).read_bytes())
        sys.stdout.flush()
        return EXIT_OK
    if target is not None:
        return _write_all(Path(target), force=args.force)
    print(_listing())
    return EXIT_OK
