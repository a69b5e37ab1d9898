"""Loading a syncd config end to end, and `syncd check-config`, as a user meets them."""

from __future__ import annotations

import time
from pathlib import Path
from textwrap import dedent

import pytest

from syncd.cli import main
from syncd.config import ConfigError, load_config
from syncd.model import Bundle, ChannelRule, Prepack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "syncd.example.toml"
EXAMPLE_CREDENTIALS = REPO / "config" / "credentials.example"
"""Placeholder secrets for the example, which names them as systemd credentials."""
SECRET = "s3cret-value-7f1d"

# Line numbers in the tests below count from the first line of each text.
MINIMAL = dedent(
    f"""\
    [apis.activeants]
    username = "shop"
    password = "{SECRET}"

    [apis.ankorstore]
    client_id = "id"
    client_secret = "{SECRET}"

    [sources.activeants]

    [channels.ankorstore]
    locations = ["activeants"]

    [[catalog.variants]]
    sku = "A"

    [[catalog.variants]]
    sku = "B"
    """
)


def _write(tmp_path: Path, text: str, name: str = "syncd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return [str(problem) for problem in caught.value.problems]


# --- valid configs ----------------------------------------------------------


def test_example_config_loads_and_documents_every_section() -> None:
    config = load_config(EXAMPLE, environ={"CREDENTIALS_DIRECTORY": str(EXAMPLE_CREDENTIALS)})
    catalog = config.catalog_model()
    singles = [sku for sku in catalog.variants if sku not in catalog.bundles]
    assert len(singles) == 6  # 5 from the CSV, 1 inline; bundles carry identities too
    assert set(catalog.bundles) <= set(catalog.variants)
    assert catalog.variants["SOCK-GRY"].pack_size == 6
    assert catalog.bundles["TEE-TRIO-MUG"] == Bundle("TEE-TRIO-MUG", {"TEE-TRIO": 1, "MUG-WHT": 1})
    assert set(config.sources.enabled()) == {
        "activeants",
        "astral",
        "ankorstore_orders",
        "fabric_orders",
        "fashiontrade",
    }
    fabric = config.apis.fabric
    assert fabric is not None
    # A base URL loses its trailing slash; the token URL keeps it (DRF-style paths need it).
    assert fabric.base_url == "https://marketplace-api.fabric.inc"
    assert fabric.auth_url == "https://marketplace-api.fabric.inc/auth/token/"
    # Bare credential names resolve in $CREDENTIALS_DIRECTORY, as under systemd.
    assert fabric.secret("client_secret").get_secret_value() == "placeholder-fabric-secret-not-real"


def test_log_level_is_a_daemon_key(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, MINIMAL), environ={}).daemon.log_level == "info"
    quiet = _write(tmp_path, '[daemon]\nlog_level = "warning"\n' + MINIMAL, "quiet.toml")
    assert load_config(quiet, environ={}).daemon.log_level == "warning"
    loud = _write(tmp_path, '[daemon]\nlog_level = "loud"\n' + MINIMAL, "loud.toml")
    assert _problems(loud) == [
        f"{loud}:2: daemon.log_level: Input should be 'debug', 'info', 'warning' or 'error'"
    ]


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL), environ={})
    assert config.daemon.database == Path("/var/lib/syncd/ledger.db")
    assert config.daemon.lock_path == Path("/var/lib/syncd/ledger.db.lock")
    assert config.sources.activeants is not None
    assert config.sources.activeants.stock_field == "availableStock"
    assert config.apis.ankorstore is not None
    assert config.apis.ankorstore.requests_per_minute == 600
    assert config.handover.match == "none"
    assert config.channel_rules() == [
        ChannelRule(
            channel="ankorstore",
            locations=("activeants",),
            buffer=0,
            percentage=100.0,
            cap=None,
            pack_rounding=True,
            skus=None,
        )
    ]


def test_channel_rules_follow_the_channels_column(tmp_path: Path) -> None:
    text = dedent(
        """\
        [apis.activeants]
        username = "shop"
        password = "x"
        [apis.ankorstore]
        client_id = "id"
        client_secret = "x"
        [apis.fabric]
        auth_url = "https://auth.example/token/"
        client_id = "id"
        client_secret = "x"
        brand_id = "9"
        [sources.activeants]
        [channels.ankorstore]
        locations = ["activeants"]
        buffer = 2
        percentage = 50
        cap = 10
        [channels.fabric]
        locations = ["activeants"]
        [catalog]
        csv = "c.csv"
        [[catalog.bundles]]
        sku = "AB"
        components = { A = 1, B = 1 }
        channels = ["fabric"]
        [[catalog.prepacks]]
        code = "P"
        lines = { A = 2 }
        """
    )
    (tmp_path / "c.csv").write_text("sku,channels\nA,\nB,ankorstore\n")
    config = load_config(_write(tmp_path, text), environ={})
    rules = {rule.channel: rule for rule in config.channel_rules()}
    assert rules["ankorstore"].skus == frozenset({"A", "B"})
    assert rules["fabric"].skus == frozenset({"A", "AB"})
    assert (rules["ankorstore"].buffer, rules["ankorstore"].percentage) == (2, 50.0)
    assert rules["ankorstore"].cap == 10
    assert rules["fabric"].pack_rounding is False
    assert config.catalog_model().prepacks == {"P": Prepack("P", {"A": 2})}


def test_disabled_integrations_need_no_api_and_read_no_secret(tmp_path: Path) -> None:
    text = MINIMAL + dedent(
        """\
        [sources.fashiontrade]
        enabled = false
        [apis.fashiontrade]
        api_key_file = "does/not/exist"
        """
    )
    config = load_config(_write(tmp_path, text), environ={})
    assert config.apis.fashiontrade is not None
    with pytest.raises(LookupError):
        config.apis.fashiontrade.secret("api_key")


# --- problems, each with its line ---------------------------------------------


def test_every_unknown_key_is_reported_on_its_line(tmp_path: Path) -> None:
    text = MINIMAL.replace('username = "shop"', 'username = "shop"\nusrname = "x"')
    text = text.replace('sku = "B"', 'sku = "B"\npacksize = 6')
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}:3: apis.activeants.usrname: unknown key (did you mean 'username'?)",
        f"{path}:20: catalog.variants[1].packsize: unknown key (did you mean 'pack_size'?)",
    ]


def test_unknown_section(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "[channel.fabric]\nlocations = []\n")
    assert _problems(path) == [f"{path}:19: channel: unknown key (did you mean 'channels'?)"]


def test_wrong_types_name_the_toml_type_not_the_value(tmp_path: Path) -> None:
    # Line 7 becomes `client_secret = 4711` and the old value a comment on line 8.
    text = MINIMAL.replace('client_secret = "', "client_secret = 4711\n#").replace(
        'locations = ["activeants"]', 'locations = ["activeants"]\nbuffer = "3"'
    )
    path = _write(tmp_path, text)
    problems = _problems(path)
    assert problems == [
        f"{path}:7: apis.ankorstore.client_secret: Input should be a valid string (got integer)",
        f"{path}:14: channels.ankorstore.buffer: Input should be a valid integer (got string)",
    ]
    assert not any("4711" in problem for problem in problems)


def test_negative_buffer_and_percentage_out_of_range(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'locations = ["activeants"]', 'locations = ["activeants"]\nbuffer = -1\npercentage = 101'
    )
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}:13: channels.ankorstore.buffer: Input should be greater than or equal to 0",
        f"{path}:14: channels.ankorstore.percentage: Input should be less than or equal to 100",
    ]


def test_missing_key_points_at_its_table_header(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace('locations = ["activeants"]', "buffer = 1"))
    assert _problems(path) == [f"{path}:11: channels.ankorstore.locations: required key is missing"]


def test_missing_secret_file(tmp_path: Path) -> None:
    text = MINIMAL.replace(f'password = "{SECRET}"', 'password_file = "secrets/aa"')
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}:3: apis.activeants.password_file: secret file {tmp_path}/secrets/aa does not exist"
    ]


def test_unset_environment_variable(tmp_path: Path) -> None:
    text = MINIMAL.replace(f'client_secret = "{SECRET}"', 'client_secret_env = "AK_SECRET"')
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}:7: apis.ankorstore.client_secret_env: environment variable AK_SECRET is not set"
    ]
    config = load_config(path, environ={"AK_SECRET": "from-env"})
    assert config.apis.ankorstore is not None
    assert config.apis.ankorstore.secret("client_secret").get_secret_value() == "from-env"


def test_missing_api_section_points_at_its_users(tmp_path: Path) -> None:
    text = MINIMAL.replace('[apis.ankorstore]\nclient_id = "id"\n', "").replace(
        f'client_secret = "{SECRET}"\n', ""
    )
    path = _write(tmp_path, text + '[sources.astral]\n[channels.fabric]\nlocations = ["astral"]\n')
    assert _problems(path) == [
        f"{path}:8: channels.ankorstore: needs section [apis.ankorstore], which is missing",
        f"{path}:16: sources.astral: needs section [apis.ankorstore], which is missing",
        f"{path}:17: channels.fabric: needs section [apis.fabric], which is missing",
        f"{path}:18: channels.fabric.locations[0]: "
        "ASTRAL locations are named astral:<id>; write 'astral:*' for all of them",
    ]


def test_bundle_with_unknown_sku_and_bundle_cycle(tmp_path: Path) -> None:
    text = MINIMAL + dedent(
        """\
        [[catalog.bundles]]
        sku = "NEST"
        components = { "AB" = 2 }
        [[catalog.bundles]]
        sku = "AB"
        components = { "A" = 1, "Q" = 1 }
        [[catalog.bundles]]
        sku = "X"
        components = { "Y" = 1 }
        [[catalog.bundles]]
        sku = "Y"
        components = { "X" = 1 }
        """
    )
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}:24: catalog.bundles[1].components.Q: unknown SKU 'Q'",
        f"{path}:27: catalog.bundles[2].components: bundle cycle: X -> Y -> X",
    ]


def test_duplicate_sku_between_csv_and_inline(tmp_path: Path) -> None:
    (tmp_path / "cat.csv").write_text("sku\nC\nA\n")
    path = _write(tmp_path, MINIMAL + '[catalog]\ncsv = "cat.csv"\n')
    assert _problems(path) == [
        f"{path}:15: catalog.variants[0].sku: duplicate SKU 'A' (already defined by "
        f"{tmp_path}/cat.csv line 3)"
    ]


def test_csv_problems_name_the_csv_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "cat.csv").write_text("sku,pack_size,channels\nC,1,\nD,-2,\nE,1,ebay\n")
    path = _write(tmp_path, MINIMAL + '[catalog]\ncsv = "cat.csv"\n')
    csv_path = f"{tmp_path}/cat.csv"
    assert _problems(path) == [
        f"{csv_path}:3: pack_size: '-2' is not a whole number >= 1",
        f"{csv_path}:4: channels: unknown channel 'ebay'; use ankorstore or fabric",
    ]


def test_missing_csv_is_reported_on_the_csv_key(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + '[catalog]\ncsv = "gone.csv"\n')
    assert _problems(path) == [
        f"{path}:20: catalog.csv: cannot read {tmp_path}/gone.csv: No such file or directory"
    ]


def test_toml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace('sku = "B"', "sku = B"))
    assert _problems(path) == [f"{path}:18: TOML syntax: Invalid value (column 7)"]


def test_unreadable_file(tmp_path: Path) -> None:
    assert _problems(tmp_path / "absent.toml") == [
        f"{tmp_path}/absent.toml: cannot read: No such file or directory"
    ]
    assert _problems(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[daemon]\nlog_format = "caf\xe9"\n')
    assert _problems(bad) == [f"{bad}:2: not valid UTF-8"]


def test_fabric_base_url_must_not_repeat_v1(tmp_path: Path) -> None:
    text = MINIMAL + dedent(
        """\
        [apis.fabric]
        base_url = "https://marketplace-api.fabric.inc/v1/"
        auth_url = "https://auth.example/token/"
        client_id = "id"
        client_secret = "x"
        brand_id = "9"
        """
    )
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}:20: apis.fabric.base_url: "
        "drop the trailing /v1: syncd's fabric paths already start with /v1/"
    ]


FABRIC = dedent(
    """\
    [apis.fabric]
    auth_url = "https://auth.example/token/"
    client_id = "id"
    client_secret = "x"
    brand_id = "9"
    [channels.fabric]
    locations = ["activeants"]
    """
)


# Each snippet is appended to MINIMAL (18 lines), so its first line is line 19.
@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            '[handover]\nreference_templates = { ankorstore = "AK-{ref}" }\n',
            "20: handover.reference_templates.ankorstore: "
            "unknown placeholder {ref}; use {order_ref}",
        ),
        (
            '[handover]\nreference_templates = { amazon = "{order_ref}" }\n',
            "20: handover.reference_templates.amazon: unknown key",
        ),
        (
            FABRIC + 'write_path = "/v1/brands/{brand_id}/inventory/"\n',
            "26: channels.fabric.write_path: must contain {inventory_id}",
        ),
        (
            FABRIC + 'write_body = "quantity value"\n',
            "26: channels.fabric.write_body: 'quantity value' is not a JSON field name",
        ),
        (
            "[sources.astral]\npoll_interval = 60.0\nstale_after = 60\n",
            "21: sources.astral.stale_after: must be longer than poll_interval (60 s), "
            "or the source counts as stale between two polls",
        ),
        (
            '[sources.astral]\n[sources.ankorstore_orders]\nfulfilled_from = "astral:*"\n',
            "21: sources.ankorstore_orders.fulfilled_from: name one location, not a pattern",
        ),
        (
            FABRIC + '[sources.fabric_orders]\norders_path = "/v1/brands/{brand}/orders/"\n',
            "27: sources.fabric_orders.orders_path: "
            "unknown placeholder {brand}; use {brand_id}, {retailer_id}",
        ),
        (
            FABRIC + '[sources.fabric_orders]\norders_path = "/v1/brands/{brand_id}/orders"\n',
            "27: sources.fabric_orders.orders_path: must end with '/'",
        ),
        (
            FABRIC
            + '[sources.fabric_orders]\norders_path = "/v1/retailers/{retailer_id}/orders/"\n',
            "27: sources.fabric_orders.orders_path: "
            "uses {retailer_id} but [apis.fabric] has no retailer_id",
        ),
        (
            "[sources.ankorstore_orders]\npage_size = 500\n",
            "20: sources.ankorstore_orders.page_size: Input should be less than or equal to 100",
        ),
        (
            "[handover]\nbatch_size = 0\n",
            "20: handover.batch_size: Input should be greater than or equal to 1",
        ),
        (
            '[daemon]\ndatabase = ""\n',
            "20: daemon.database: must not be empty",
        ),
        (
            "[channels.fabric]\nlocations = []\n",
            "20: channels.fabric.locations: List should have at least 1 item after validation, not 0",
        ),
        (
            '[apis.fashiontrade]\nbase_url = "ftp://ft.example"\n',
            "20: apis.fashiontrade.base_url: not an http(s) URL: 'ftp://ft.example'",
        ),
    ],
)
def test_field_and_cross_section_rules(tmp_path: Path, snippet: str, expected: str) -> None:
    path = _write(tmp_path, MINIMAL + snippet)
    assert _problems(path) == [f"{path}:{expected}"]


def test_two_ways_of_giving_one_secret(tmp_path: Path) -> None:
    text = MINIMAL.replace(f'password = "{SECRET}"', f'password_env = "AA"\npassword = "{SECRET}"')
    path = _write(tmp_path, text)
    assert _problems(path, {"AA": "x"}) == [
        f"{path}:4: apis.activeants.password: password_env and password both given; keep only one"
    ]


# --- secrets and paths -------------------------------------------------------------


def test_secrets_never_appear_in_repr_str_or_json(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "-file\n")
    text = MINIMAL.replace(f'password = "{SECRET}"', 'password_file = "./pw"')
    config = load_config(_write(tmp_path, text), environ={})
    assert config.apis.activeants is not None
    assert config.apis.ankorstore is not None
    password = config.apis.activeants.secret("password")
    client_secret = config.apis.ankorstore.secret("client_secret")
    assert password.get_secret_value() == SECRET + "-file"
    assert client_secret.get_secret_value() == SECRET
    for rendering in (
        repr(config),
        str(config),
        config.model_dump_json(),
        repr(config.model_dump()),
        repr(password),
        str(password),
        f"{client_secret}",
    ):
        assert SECRET not in rendering


def test_relative_paths_resolve_against_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "etc" / "syncd"
    (home / "creds").mkdir(parents=True)
    (home / "creds" / "aa").write_text("pw\n")
    (home / "cat.csv").write_text("sku\nZ\n")
    text = (
        MINIMAL.replace(f'password = "{SECRET}"', 'password_file = "creds/aa"')
        + '[daemon]\ndatabase = "state/ledger.db"\nlock_file = ""\n[catalog]\ncsv = "cat.csv"\n'
    )
    path = _write(home, text)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc/syncd/syncd.toml"), environ={})
    assert config.daemon.database == home.absolute() / "state" / "ledger.db"
    assert config.daemon.lock_path == home.absolute() / "state" / "ledger.db.lock"
    assert set(config.catalog_model().variants) == {"A", "B", "Z"}
    assert config.apis.activeants is not None
    assert config.apis.activeants.secret("password").get_secret_value() == "pw"
    assert config.source_path == Path("etc/syncd/syncd.toml")
    assert path.exists()


def test_systemd_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "activeants").write_text("from-systemd\n")
    text = MINIMAL.replace(f'password = "{SECRET}"', 'password_file = "activeants"')
    path = _write(tmp_path, text)
    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.apis.activeants is not None
    assert config.apis.activeants.secret("password").get_secret_value() == "from-systemd"
    (problem,) = _problems(path, {})
    assert problem.startswith(f"{path}:3: apis.activeants.password_file: 'activeants' names")
    assert "$CREDENTIALS_DIRECTORY is not set" in problem


def test_large_csv_catalog_loads_quickly(tmp_path: Path) -> None:
    rows = ["sku,activeants_sku,ankorstore_variant_id,barcode,pack_size,channels"]
    rows += [f"S{i:05},AA{i:05},v-{i},87{i:011},{1 + i % 6},ankorstore" for i in range(10_000)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    path = _write(tmp_path, MINIMAL + '[catalog]\ncsv = "big.csv"\n')
    # CPU time, not wall time: other processes on a loaded machine do not count.
    started = time.process_time()
    config = load_config(path, environ={})
    elapsed = time.process_time() - started
    catalog = config.catalog_model()
    assert len(catalog.variants) == 10_002
    assert catalog.variants["S09999"].pack_size == 1 + 9999 % 6
    assert elapsed < 2.0, f"10 000-row catalog took {elapsed:.2f} s of CPU"


# --- the command --------------------------------------------------------------------


def test_check_config_ok(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/nonexistent")  # restored after the test
    argv = ["--config", str(EXAMPLE), "--credentials-dir", str(EXAMPLE_CREDENTIALS)]
    assert main(["check-config", *argv]) == 0
    out, err = capsys.readouterr()
    assert out == f"{EXAMPLE}: ok (6 variants, 2 bundles, 2 channels)\n"
    assert err == ""


def test_check_config_problems_exit_2_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MINIMAL.replace('sku = "B"', 'sku = "B"\npack_size = 0').replace(
        "[sources.activeants]", "[sources.activeants]\nstock_field = 'stock'"
    )
    path = _write(tmp_path, text)
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:10: sources.activeants.stock_field: "
        "Input should be 'availableStock', 'freeStock' or 'economicStock'",
        f"{path}:20: catalog.variants[1].pack_size: Input should be greater than or equal to 1",
    ]


def test_check_config_unreadable_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{tmp_path}/nope.toml: cannot read: No such file or directory\n"


def test_a_loaded_config_keeps_its_catalog_but_not_the_entries_it_was_built_from(
    tmp_path: Path,
) -> None:
    """Bundles and inline variants live in the catalog; their per-entry models are dropped."""
    text = MINIMAL + '\n[[catalog.bundles]]\nsku = "AB"\ncomponents = { A = 1, B = 2 }\n'
    config = load_config(_write(tmp_path, text), environ={})
    catalog = config.catalog_model()
    assert sorted(catalog.variants) == ["A", "AB", "B"]
    assert dict(catalog.bundles["AB"].components) == {"A": 1, "B": 2}
    assert (config.catalog.variants, config.catalog.bundles) == ([], [])
    assert config.apis.ankorstore is not None
    assert config.apis.ankorstore.secret("client_secret").get_secret_value() == SECRET
