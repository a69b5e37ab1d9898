"""The `syncd` command line.

Every sub-command's work lives in the module that owns it; this file only
parses arguments and turns user errors into messages and exit codes. A
command whose module has not landed yet says so and exits 3 -- never fake
output.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from syncd import __version__
from syncd.cli_options import (
    DEFAULT_CONFIG,
    apply_config_options,
    config_options,
    default_config_path,
)

__all__ = ["DEFAULT_CONFIG", "build_parser", "default_config_path", "main"]

EXIT_NOT_IMPLEMENTED = 3
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]

ONCE_EXIT_STATUS = (
    "exit status: 0 every channel acknowledged every value; 1 something is parked, held, "
    "deferred by the rate budget or waiting (each reason on stderr), or it could not start "
    "(another syncd holds the ledger, the ledger is damaged); 2 the config is invalid; "
    "3 a source or a channel failed during the run (each failure on stderr, naming its cause)"
)
"""`syncd once --help`; the codes are syncd.once's EXIT_* constants."""

# command -> "module:function" taking the parsed namespace and returning an exit code.
_HANDLERS: dict[str, str] = {
    "run": "syncd.daemon.runtime:cli_run",
    "once": "syncd.once.command:cli_once",
    "status": "syncd.status.client:cli_status",
    "confirm": "syncd.status.client:cli_confirm",
    "unpark": "syncd.unpark:cli_unpark",
    "explain": "syncd.explain:cli_explain",
    "check-config": "syncd.config:cli_check_config",
    "demo": "syncd.sandbox.demo:cli_demo",
    "sandbox": "syncd.sandbox.serve:cli_sandbox",
    "files": "syncd.deploy_files:cli_files",
    "ledger": "syncd.ledger_cli:cli_ledger",
}

_NEEDS_SANDBOX_EXTRA = frozenset({"demo", "sandbox"})
"""Commands that run the simulators, whose web servers a production install leaves out."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description=(
            "Inventory synchronization daemon: reads stock from Active Ants and ASTRAL and "
            "open orders from the channels, records everything in a SQLite ledger, and "
            "publishes sellable quantities to Ankorstore and fabric."
        ),
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # --config and --credentials-dir, identical on every command that reads a config.
    common = [config_options()]

    sub.add_parser("run", parents=common, help="run the daemon (systemd service entry point)")

    once = sub.add_parser(
        "once",
        parents=common,
        help="run one full cycle: read every source, compute, push, then exit",
        epilog=ONCE_EXIT_STATUS,
    )
    once.add_argument(
        "--dry-run", action="store_true", help="compute and print the diff; write nothing"
    )
    once.add_argument("--json", action="store_true", help="print the dry-run diff as JSON")
    once.add_argument("--confirm", action="store_true", help="confirm a held cycle and push it")

    status = sub.add_parser(
        "status",
        parents=common,
        help="ask the running daemon how it is doing",
        description="Ask the running daemon how it is doing.",
        epilog=(
            "exit status: 0 ok, 1 degraded, 2 failing, 3 unknown (the daemon did not answer "
            "or gave no health)"
        ),
    )
    status.add_argument("--socket", default=None, help="status socket path (default: from config)")
    status.add_argument("--json", action="store_true", help="print the raw JSON answer")

    confirm = sub.add_parser(
        "confirm", parents=common, help="confirm a held cycle so the daemon pushes it"
    )
    confirm.add_argument("channel", help="the channel whose cycle is held")
    confirm.add_argument("hold_id", help="the hold id shown by `syncd status`, or 'all'")
    confirm.add_argument("--socket", default=None, help="status socket path (default: from config)")
    confirm.add_argument("--json", action="store_true", help="print the raw JSON answer")

    unpark = sub.add_parser(
        "unpark",
        parents=common,
        help="push variants a channel refused (parked) again, once the cause is fixed",
    )
    unpark.add_argument("channel", help="the channel that parked them")
    unpark.add_argument("skus", nargs="*", metavar="SKU", help="the SKUs to unpark")
    unpark.add_argument("--all", action="store_true", help="every variant parked on the channel")
    unpark.add_argument("--reason", default=None, help="why, kept in the push log")
    unpark.add_argument("--socket", default=None, help="status socket path (default: from config)")
    unpark.add_argument("--json", action="store_true", help="print the raw JSON answer")

    explain = sub.add_parser(
        "explain", parents=common, help="show how a SKU's published number was derived"
    )
    explain.add_argument("sku", help="the brand SKU")
    explain.add_argument("--channel", default=None, help="only this channel")
    explain.add_argument("--json", action="store_true", help="print JSON")

    ledger = sub.add_parser(
        "ledger", parents=common, help="check the ledger, or rebuild its balances"
    )
    ledger.add_argument("action", choices=["check", "rebuild-balances"], help="what to do")

    check = sub.add_parser(
        "check-config", parents=common, help="validate a config file; exit 2 on problems"
    )
    check.add_argument(
        "config_path", nargs="?", default=None, metavar="PATH", help="the same as --config PATH"
    )

    demo = sub.add_parser(
        "demo", help="run the daemon against its built-in sandbox through a simulated day"
    )
    demo.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the day for SECONDS, let syncd settle, then exit 0 only if every "
        "channel shows what syncd computed",
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the demo's files (config, ledger, log) on exit"
    )
    demo.add_argument(
        "--variants", type=int, default=200, help="catalog size (default %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed of the simulated day")

    sandbox = sub.add_parser("sandbox", help="start the loopback simulators and wait")
    sandbox.add_argument(
        "--write-config", default=None, metavar="PATH", help="write a syncd TOML pointing at them"
    )
    sandbox.add_argument(
        "--variants", type=int, default=200, help="catalog size (default %(default)s)"
    )
    sandbox.add_argument("--seed", type=int, default=7, help="catalog seed")
    sandbox.add_argument(
        "--state-dir", default=None, help="where to write credentials and the catalog CSV"
    )

    files = sub.add_parser(
        "files",
        help="list, print or write out the files syncd ships: systemd units, sysusers entry, "
        "example config and catalog",
    )
    files.add_argument("--print", dest="show", metavar="NAME", help="print one file to stdout")
    files.add_argument("--to", metavar="DIR", help="write every shipped file into DIR")
    files.add_argument(
        "--force", action="store_true", help="with --to: replace files that already exist"
    )
    return parser


def _resolve(command: str) -> Handler | None:
    module_name, _, function_name = _HANDLERS[command].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            exc.name == module_name or module_name.startswith(exc.name + ".")
        ):
            return None
        raise
    handler = getattr(module, function_name, None)
    return handler if callable(handler) else None


def _missing_extra(command: str, exc: ModuleNotFoundError) -> str | None:
    """What to install when a simulator command lacks its web servers, else ``None``."""
    top = (exc.name or "").partition(".")[0]
    if command not in _NEEDS_SANDBOX_EXTRA or top in ("", "syncd"):
        return None
    return (
        f"syncd {command}: the simulators need {top}, which is not installed "
        "(a production install leaves the sandbox out). Install the extra: "
        "pip install 'syncd[sandbox]' (in a checkout: make demo)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = apply_config_options(args)
    if problem is not None:
        print(f"syncd {args.command}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        handler = _resolve(args.command)
    except ModuleNotFoundError as exc:
        message = _missing_extra(args.command, exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return EXIT_USAGE
    if handler is None:
        print(f"syncd {args.command}: not implemented yet", file=sys.stderr)
        return EXIT_NOT_IMPLEMENTED
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
