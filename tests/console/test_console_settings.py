"""Console settings: defaults, tokens, the bind rule, and never a token in an error."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from console.auth import TokenTable, bearer_token, delay_after
from console.settings import (
    ConsoleSettings,
    load_console_settings,
    resolve_local_token,
    resolve_secret,
)
from fulfillment.errors import ConfigError

GOOD = "aB3dE5gH7jK9mN1pQ2rS4tU6vW8xY0zA"  #: 32 characters, many distinct
OTHER = "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa12"  #: 38


def test_defaults_are_loopback_port_8001_without_tokens() -> None:
    loaded = load_console_settings({})

    assert (loaded.port, loaded.bind, loaded.tokens, loaded.secret_key) == (8001, "127.0.0.1", (), None)


def test_tokens_are_parsed_in_order() -> None:
    loaded = load_console_settings({"CROSSFILL_CONSOLE_TOKENS": f"ana:operator:{GOOD}, shop:merchant:{OTHER}:acct_1A+platform"})

    assert [(t.name, t.role, len(t.token), t.accounts) for t in loaded.tokens] == [
        ("ana", "operator", 32, None), ("shop", "merchant", 38, frozenset({"acct_1A", "platform"}))]
    assert GOOD not in repr(loaded)


@pytest.mark.parametrize(("raw", "fix"), [
    (f"ana:admin:{GOOD}", "role 'admin' is unknown"),
    ("ana:operator:short-token", "the token has 11 characters"),
    (f"ana:operator:{GOOD},", "entry #2: write each entry as name:role:token"),
    (f"operator:{GOOD}", "write each entry as name:role:token"),
    (f"ana:viewer:{GOOD},ana:operator:{OTHER}", "the name 'ana' is used twice"),
    ("ana:viewer:" + "a" * 40, "only 1 distinct characters"),
    ("ana:viewer:" + "abcdefghi" * 5, "only 9 distinct characters"),
    (f"shop:merchant:{GOOD}", "a merchant entry names its accounts"),
    (f"shop:merchant:{GOOD}:", "a merchant entry names its accounts"),
    (f"shop:merchant:{GOOD}:acct_1A+shop_b", "'shop_b' is not an account"),
])
def test_a_bad_token_entry_names_the_setting_and_never_shows_a_token(raw: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_console_settings({"CROSSFILL_CONSOLE_TOKENS": raw})

    assert caught.value.name == "CROSSFILL_CONSOLE_TOKENS"
    assert fix in str(caught.value)
    assert GOOD not in str(caught.value) and OTHER not in str(caught.value) and "a" * 40 not in str(caught.value)
    assert "abcdefghi" * 5 not in str(caught.value)
    assert "short-token" not in str(caught.value)


@pytest.mark.parametrize("bind", ["0.0.0.0", "10.0.0.5", "::", "console.internal"])
def test_a_non_loopback_bind_needs_tokens(bind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_console_settings({"CROSSFILL_CONSOLE_BIND": bind})

    assert caught.value.name == "CROSSFILL_CONSOLE_BIND"
    assert load_console_settings({"CROSSFILL_CONSOLE_BIND": bind,
                                  "CROSSFILL_CONSOLE_TOKENS": f"a:viewer:{GOOD}"}).bind == bind


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_binds_need_no_tokens(bind: str) -> None:
    assert load_console_settings({"CROSSFILL_CONSOLE_BIND": bind}).is_loopback


@pytest.mark.parametrize(("name", "value"), [("CROSSFILL_CONSOLE_PORT", "80000"), ("CROSSFILL_CONSOLE_PORT", "http"),
                                             ("CROSSFILL_CONSOLE_SECRET", "too-short")])
def test_bad_numbers_and_short_secrets_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_console_settings({name: value})

    assert caught.value.name == name
    assert "too-short" not in str(caught.value)


def test_the_cookie_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = resolve_secret(ConsoleSettings(), tmp_path)
    second = resolve_secret(ConsoleSettings(), tmp_path)
    configured = resolve_secret(ConsoleSettings(secret_key="x" * 40), tmp_path)

    assert first.secret_key and first.secret_key == second.secret_key
    assert stat.S_IMODE(os.stat(tmp_path / "console_secret").st_mode) == 0o600
    assert configured.secret_key == "x" * 40


def test_a_local_operator_token_only_without_configured_tokens(tmp_path: Path) -> None:
    local, token = resolve_local_token(ConsoleSettings(), tmp_path)
    again, same = resolve_local_token(ConsoleSettings(), tmp_path)
    configured = load_console_settings({"CROSSFILL_CONSOLE_TOKENS": f"a:viewer:{GOOD}"})

    assert token and token == same and len(token) >= 32
    assert [(t.name, t.role) for t in local.tokens] == [("local", "operator")]
    assert resolve_local_token(configured, tmp_path) == (configured, None)


def test_token_lookup_finds_the_holder_and_nothing_else() -> None:
    table = TokenTable(load_console_settings({"CROSSFILL_CONSOLE_TOKENS": f"a:viewer:{GOOD},b:operator:{OTHER}"})
                       .tokens, "k" * 40)

    assert table.authenticate(GOOD) is not None and table.authenticate(GOOD).name == "a"  # type: ignore[union-attr]
    assert table.authenticate(OTHER).role == "operator"  # type: ignore[union-attr]
    assert table.authenticate(GOOD + "a") is None and table.authenticate("") is None
    assert table.from_session("a", table.fingerprint("a")).name == "a"  # type: ignore[union-attr]
    assert table.from_session("a", table.fingerprint("b")) is None
    assert GOOD not in table.fingerprint("a")


@pytest.mark.parametrize(("header", "token"), [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None),
                                               ("Bearer ", None), (None, None), ("", None)])
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_the_sign_in_delay_doubles_after_three_failures_up_to_five_minutes() -> None:
    assert [delay_after(n) for n in range(1, 9)] == [0, 0, 0, 1, 2, 4, 8, 16]
    assert delay_after(100) == 300
