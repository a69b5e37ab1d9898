"""What the hostile tests share: editing the sandbox config, reading a process' memory.

Daemons, configs and waiting come from tests/integration/daemon/_support.py,
the helpers every `syncd run` integration test uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.integration.daemon._support import DaemonProcess


def set_api_key(config: Path, api: str, key: str, value: str) -> None:
    """Set ``key = value`` (a TOML value) in ``[apis.<api>]``, replacing any earlier line."""
    text = config.read_text(encoding="utf-8")
    header = f"[apis.{api}]\n"
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end == -1 else end + 1
    body = re.sub(rf"(?m)^{re.escape(key)}\s*=.*\n", "", text[start:end])
    config.write_text(text[:start] + f"{key} = {value}\n" + body + text[end:], encoding="utf-8")


def peak_rss_mb(pid: int) -> float:
    """The process' peak resident set (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def source(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    """One source's entry in the daemon's status document."""
    reply = daemon.ask({"cmd": "status"})
    [found] = [s for s in reply["sources"] if s["name"] == name]
    return dict(found)


def failing_with(daemon: DaemonProcess, name: str, fragment: str) -> bool:
    error = source(daemon, name).get("last_error") or ""
    return fragment in error
