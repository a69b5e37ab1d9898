"""Bad configs: each is refused with ``PATH:LINE: key: message``, never a traceback.

Every ``config/*.toml`` file is one case. Its first lines say what
``syncd check-config`` must report, one problem per line::

    # expect: 14: channels.ankorstore.buffer: greater than or equal to 0
    # expect: csv/bad_rows.csv:3: pack_size: not a whole number
    # run: subprocess

``LINE`` is a line of the case file itself (or ``FILE:LINE`` for a file the
config names, relative to it), ``key`` is the dotted key (``-`` when the
problem has none) and the last part is a fragment of the message. The case
passes only when the problems are exactly those. Every file is loaded
in-process with `load_config`; those marked ``# run: subprocess`` are also
run through a real ``syncd check-config`` process, which must exit 2, print
only those lines on stderr and no traceback. Adding a case is adding a file.

Cases that cannot live in a file of their own -- an empty file, binary
garbage, a huge file, hostile numbers and nesting -- are built in a
temporary directory by the tests at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.config import ConfigError, ConfigProblem, load_config

CASES = Path(__file__).parent / "config"
_EXPECT = re.compile(
    r"# expect: (?:(?P<file>[^:\s]+):)?(?P<line>\d+): (?P<key>\S+): (?P<fragment>.+)"
)
_PROBLEM_LINE = re.compile(r"(?P<path>.+?):(?P<line>\d+): (?:(?P<key>[^ :]+): )?(?P<message>.+)")
_ENVIRONMENT_LEAKS = ("CREDENTIALS_DIRECTORY", "SYNCD_BADINPUT_NEVER_SET", "SYNCD_CONFIG")
"""Variables a case relies on being unset, in-process and in the subprocess."""


@dataclass(frozen=True, order=True)
class Expected:
    file: str
    """Relative to the case's directory; the case file itself for most problems."""
    line: int
    key: str
    """``""`` when the problem names no key."""
    fragment: str


@dataclass(frozen=True)
class Case:
    path: Path
    expected: tuple[Expected, ...]
    subprocess: bool

    @property
    def name(self) -> str:
        return self.path.stem


def _read_case(path: Path) -> Case:
    expected: list[Expected] = []
    run_subprocess = False
    for raw in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if raw.startswith("# expect:"):
            match = _EXPECT.fullmatch(raw.rstrip())
            assert match is not None, f"{path.name}: malformed header {raw!r}"
            key = match["key"]
            expected.append(
                Expected(
                    file=match["file"] or path.name,
                    line=int(match["line"]),
                    key="" if key == "-" else key,
                    fragment=match["fragment"],
                )
            )
        elif raw.strip() == "# run: subprocess":
            run_subprocess = True
        else:
            break
    assert expected, f"{path.name}: the first line must be an '# expect:' header"
    return Case(path, tuple(sorted(expected)), run_subprocess)


ALL_CASES = [_read_case(path) for path in sorted(CASES.glob("*.toml"))]
SUBPROCESS_CASES = [case for case in ALL_CASES if case.subprocess]


def _located(problem: ConfigProblem, directory: Path) -> tuple[str, int, str]:
    file = os.path.relpath(Path(problem.path).absolute(), directory)
    assert problem.line is not None, f"no line for {problem}"
    return file, problem.line, problem.key


def _assert_matches(
    found: list[tuple[str, int, str, str]], expected: tuple[Expected, ...], shown: str
) -> None:
    """``found`` is (file, line, key, message) per problem, in any order."""
    places = sorted(found)
    assert [(f, line, key) for f, line, key, _ in places] == [
        (e.file, e.line, e.key) for e in expected
    ], f"problems reported:\n{shown}"
    for (_, _, _, message), want in zip(places, expected, strict=True):
        assert want.fragment in message, f"{want.fragment!r} not in {message!r}\n{shown}"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENVIRONMENT_LEAKS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
def test_load_config_reports_exactly_the_expected_problems(case: Case) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(case.path, environ={})
    problems = raised.value.problems
    found = [(*_located(p, case.path.parent), p.message) for p in problems]
    _assert_matches(found, case.expected, "\n".join(map(str, problems)))
    for problem in problems:
        # The printed form is the compiler format editors jump to.
        assert str(problem).startswith(f"{problem.path}:{problem.line}: ")


# --- the same through a real `syncd check-config` process -----------------------------


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def _check_config_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _ENVIRONMENT_LEAKS}


def _spawn(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "check-config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_check_config_env(),
    )


@pytest.fixture(scope="module")
def cli_runs() -> Iterator[dict[str, Run]]:
    """Every subprocess case at once: the process start-up dominates, so run them together."""
    started = {case.name: _spawn(case.path) for case in SUBPROCESS_CASES}
    runs: dict[str, Run] = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=60)
            runs[name] = Run(process.returncode, stdout, stderr)
        yield runs
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()


def _parse_stderr(stderr: str, directory: Path) -> list[tuple[str, int, str, str]]:
    found = []
    for line in stderr.splitlines():
        match = _PROBLEM_LINE.fullmatch(line)
        assert match is not None, f"not PATH:LINE: key: message: {line!r}"
        file = os.path.relpath(match["path"], directory)
        found.append((file, int(match["line"]), match["key"] or "", match["message"]))
    return found


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=lambda case: case.name)
def test_check_config_process_exits_2_with_located_problems(
    case: Case, cli_runs: dict[str, Run]
) -> None:
    run = cli_runs[case.name]
    assert run.code == 2, run.stderr
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    _assert_matches(_parse_stderr(run.stderr, case.path.parent), case.expected, run.stderr)


def test_the_subprocess_subset_covers_each_kind_of_problem() -> None:
    """Syntax, duplicate, unknown key, secret, bundle, CSV and range problems all run for real."""
    names = {case.name for case in SUBPROCESS_CASES}
    for family in (
        "syntax",
        "duplicate",
        "unknown_key",
        "missing_secret",
        "bundle",
        "csv",
        "negative",
    ):
        assert any(name.startswith(family) for name in names), family


# --- cases built here -----------------------------------------------------------------


def _problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    return raised.value.problems


def _check_cli(path: Path) -> Run:
    process = _spawn(path)
    stdout, stderr = process.communicate(timeout=60)
    return Run(process.returncode, stdout, stderr)


GOOD_HEAD = """\
[apis.activeants]
username = "shop"
password = "inline-secret"

[sources.activeants]
"""


def test_an_empty_file_has_nothing_to_do(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_bytes(b"")
    run = _check_cli(path)
    assert run.code == 2
    assert (
        run.stderr
        == f"{path}:1: no source or channel is enabled: syncd would have nothing to do"
        + (" (add a [sources.*] and a [channels.*] section)\n")
    )


def test_binary_garbage_is_refused_at_its_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_bytes(b"[daemon]\ncycle_interval = 5.0\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8")
    run = _check_cli(path)
    assert (run.code, run.stdout) == (2, "")
    assert run.stderr == f"{path}:3: not valid UTF-8\n"


def test_control_characters_are_a_syntax_error_on_their_line(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(GOOD_HEAD + "\x07\x1b[31m\x00\n", encoding="utf-8")
    (problem,) = _problems_of(path)
    assert (problem.line, problem.key) == (6, "")
    assert problem.message.startswith("TOML syntax:")


def test_a_huge_file_still_names_the_line_of_its_problem(tmp_path: Path) -> None:
    """5 MB of comments and 3 000 variants, then one bad value on the last line."""
    comments = "# " + "x" * 97 + "\n"
    head = comments * 50_000
    variants = "".join(
        f'[[catalog.variants]]\nsku = "SKU-{i}"\nactiveants_sku = "AA-{i}"\n\n'
        for i in range(3_000)
    )
    tail = '[[catalog.variants]]\nsku = "LAST"\npack_size = -1\n'
    path = tmp_path / "syncd.toml"
    path.write_text(head + GOOD_HEAD + "\n" + variants + tail, encoding="utf-8")
    last_line = path.read_text(encoding="utf-8").count("\n")
    (problem,) = _problems_of(path)
    assert (problem.line, problem.key) == (last_line, "catalog.variants[3000].pack_size")
    assert "greater than or equal to 1" in problem.message


def test_a_number_of_thousands_of_digits_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(GOOD_HEAD + "poll_interval = 1" + "0" * 5_000 + "\n", encoding="utf-8")
    (problem,) = _problems_of(path)
    assert str(problem) == f"{path}:6: TOML syntax: a number with thousands of digits"


def test_nesting_deeper_than_the_parser_can_follow_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(GOOD_HEAD + "\nx = " + "[" * 5_000 + "]" * 5_000 + "\n", encoding="utf-8")
    (problem,) = _problems_of(path)
    assert problem.line == 7
    assert "nested more than" in problem.message


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_config_that_cannot_be_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "syncd.toml"
    if kind == "directory":
        path.mkdir()
    (problem,) = _problems_of(path)
    assert problem.message.startswith("cannot read:")
    assert problem.path == str(path)
