"""systemd/syncd.service: the directives syncd relies on, and systemd's own verdict on it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "syncd.service"
SYSUSERS = UNIT.with_name("syncd.sysusers")
MAX_EXPOSURE = 2.0

_ANALYZE = shutil.which("systemd-analyze") or (
    "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
)
needs_analyze = pytest.mark.skipif(_ANALYZE is None, reason="systemd-analyze is not installed")


def _directives(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values, in order (keys such as LoadCredential= repeat)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {raw!r}"
        sections[current][key.strip()].append(value.strip())
    return sections


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert match, f"unparsed time span {value!r}"
    return float(match.group(1)) * units[match.group(2) or "s"]


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return _directives(UNIT.read_text())["Service"]


def _one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key)
    assert values is not None, f"{key}= missing from syncd.service"
    return values[-1]


_HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RemoveIPC": "yes",
    "DevicePolicy": "closed",
    "KeyringMode": "private",
    "UMask": "0007",
}


@pytest.mark.parametrize(("key", "expected"), sorted(_HARDENING.items()))
def test_hardening_directive(service: dict[str, list[str]], key: str, expected: str) -> None:
    assert _one(service, key) == expected


def test_system_call_filter_allows_services_and_denies_privileged_and_resources(
    service: dict[str, list[str]],
) -> None:
    filters = service["SystemCallFilter"]
    assert "@system-service" in filters
    denied = {name for line in filters if line.startswith("~") for name in line[1:].split()}
    assert {"@privileged", "@resources"} <= denied


def test_runs_syncd_as_a_notify_service_under_its_own_user(service: dict[str, list[str]]) -> None:
    assert _one(service, "Type") == "notify"
    assert _one(service, "ExecStart").split() == [
        "/usr/local/bin/syncd",
        "run",
        "--config",
        "/etc/syncd/syncd.toml",
    ]
    assert "-HUP $MAINPID" in _one(service, "ExecReload")
    assert _one(service, "Restart") == "on-failure"
    assert _seconds(_one(service, "RestartSec")) > 0
    assert (_one(service, "User"), _one(service, "Group")) == ("syncd", "syncd")
    assert "DynamicUser" not in service, "a dynamic group cannot hold operators (see README)"


def test_no_private_user_namespace_so_operators_are_recorded_by_their_real_uid(
    service: dict[str, list[str]],
) -> None:
    # Under PrivateUsers=yes the status socket's peer credentials would read "nobody"
    # (uid 65534) for every operator, and confirm/unpark would record that.
    assert "PrivateUsers" not in service


def test_resource_ceilings_bound_descriptors_memory_and_tasks(
    service: dict[str, list[str]],
) -> None:
    nofile = int(_one(service, "LimitNOFILE"))
    # Room for every connection syncd ever holds at once (status 128 + 128 turned
    # away, metrics 32 + 32), its ledger and HTTP pools; tests/hostile runs under it.
    assert 128 + 128 + 32 + 32 + 100 <= nofile <= 4096
    sizes = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def size(value: str) -> int:
        return int(value[:-1]) * sizes[value[-1]]

    assert size(_one(service, "MemoryHigh")) < size(_one(service, "MemoryMax")) <= 4 << 30
    assert 64 <= int(_one(service, "TasksMax")) <= 512


def test_a_config_error_is_not_restarted(service: dict[str, list[str]]) -> None:
    from syncd.daemon.runtime import EXIT_CONFIG

    prevented = {code for line in service["RestartPreventExitStatus"] for code in line.split()}
    assert str(EXIT_CONFIG) in prevented
    # A crash (1) and a start-up failure (1) are still restarted.
    assert "1" not in prevented
    assert EXIT_CONFIG not in (0, 1, 2)


def test_sysusers_creates_the_service_user() -> None:
    entries = [
        line.split()[:2] for line in SYSUSERS.read_text().splitlines() if not line.startswith("#")
    ]
    assert ["u", "syncd"] in entries


def test_watchdog_and_stop_timeouts_fit_the_daemon(service: dict[str, list[str]]) -> None:
    watchdog = _seconds(_one(service, "WatchdogSec"))
    stop = _seconds(_one(service, "TimeoutStopSec"))
    # The daemon pings at half the timeout; anything under 10 s is needlessly twitchy.
    assert watchdog >= 10
    # syncd exits within ~10 s of SIGTERM: leave room to drain, but do not hang a shutdown.
    assert 10 < stop <= 60


def test_directories_for_ledger_status_socket_and_config(service: dict[str, list[str]]) -> None:
    assert _one(service, "StateDirectory") == "syncd"
    assert _one(service, "RuntimeDirectory") == "syncd"
    assert _one(service, "RuntimeDirectoryMode") == "0750"
    assert _one(service, "ConfigurationDirectory") == "syncd"


def test_every_api_secret_arrives_as_a_credential(service: dict[str, list[str]]) -> None:
    credentials = dict(line.split(":", 1) for line in service["LoadCredential"])
    assert set(credentials) == {"activeants", "ankorstore", "fabric", "fashiontrade"}
    for name, path in credentials.items():
        assert path == f"/etc/syncd/credentials/{name}"


def test_syncd_can_still_reach_the_apis(service: dict[str, list[str]]) -> None:
    assert "IPAddressDeny" not in service
    assert "PrivateNetwork" not in service


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert _ANALYZE is not None
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [_ANALYZE, "--no-pager", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify refuses an ExecStart= binary that is not installed; where syncd lives
    # is an install-time fact, so check a copy whose commands point at `true`.
    true = shutil.which("true")
    assert true is not None
    text = UNIT.read_text()
    text = re.sub(r"^(Exec\w+=)(\S+)", lambda m: m.group(1) + true, text, flags=re.MULTILINE)
    copy = tmp_path / "syncd.service"
    copy.write_text(text)

    result = _analyze("verify", "--man=no", "--recursive-errors=no", str(copy))

    complaints = [line for line in result.stderr.splitlines() if "syncd.service" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


@needs_analyze
def test_systemd_analyze_security_exposure_is_ok() -> None:
    result = _analyze("security", "--offline=yes", str(UNIT))
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip("this systemd-analyze has no offline security review (needs systemd >= 250)")

    match = re.search(r"Overall exposure level for syncd\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


_UNDER_MDWE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    sys.exit("W+X mapping was allowed: MDWE is not in force")

import ssl
import aiosqlite, anyio, httpx, pydantic, structlog
from syncd.logs import configure_logging

class Level(pydantic.BaseModel):
    sku: str
    quantity: int

async def main() -> None:
    async with aiosqlite.connect(":memory:") as db:
        await db.execute("CREATE TABLE t (x INTEGER)")
        await db.execute("INSERT INTO t VALUES (1)")
    async with httpx.AsyncClient(verify=ssl.create_default_context()):
        await anyio.sleep(0)
    Level.model_validate({"sku": "A", "quantity": 3})

anyio.run(main)
configure_logging("json")
structlog.get_logger().info("mdwe.ok")
"""


def test_python_stack_runs_without_writable_executable_memory() -> None:
    # MemoryDenyWriteExecute=yes is the seccomp twin of the kernel's PR_SET_MDWE
    # (Linux >= 6.3): run syncd's dependencies under it to prove CPython copes.
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_MDWE], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (needs Linux >= 6.3)")
    assert result.returncode == 0, result.stderr
    assert '"event": "mdwe.ok"' in result.stderr  # logs go to stderr
