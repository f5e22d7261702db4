"""The catalog TOML: parsed into frozen config, and every wrong key refused by name."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from fulfillment.catalog import Catalog, ProductConfig, load_catalog, parse_catalog
from fulfillment.errors import ConfigError
from fulfillment.handlers import HandlerRegistry

SAMPLE = """
[account]
default_tax_behavior = "exclusive"

[defaults]
handler = "http"

[products.prod_pro]
name = "Togethere Professional"
cross_sell = "prod_deploy"
handler = "http"
options = { url = "https://fulfil.example/hooks/crossfill", timeout = 5 }

[products.prod_team]
cross_sell = "prod_deploy"

[products.prod_deploy]
name = "Deploy add-on"
handler = "log"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(tomllib.loads(text))
    return caught.value


def test_a_sample_catalog_file(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, SAMPLE))

    assert catalog.default_tax_behavior == "exclusive"
    assert catalog.default_handler == "http"
    pro = catalog.product("prod_pro")
    assert (pro.name, pro.cross_sell, pro.handler) == ("Togethere Professional", "prod_deploy", "http")
    assert dict(pro.options) == {"url": "https://fulfil.example/hooks/crossfill", "timeout": 5}
    assert catalog.product("prod_deploy").handler == "log"


def test_a_product_without_a_handler_takes_the_default_handler(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, SAMPLE))

    assert catalog.product("prod_team") == ProductConfig(id="prod_team", cross_sell="prod_deploy", handler="http")


def test_an_unlisted_product_gets_the_defaults(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, SAMPLE))

    assert catalog.product("prod_unknown") == ProductConfig(id="prod_unknown", handler="http")


def test_default_options_apply_to_products_that_set_none() -> None:
    catalog = parse_catalog(tomllib.loads("""
[defaults]
handler = "http"
options = { url = "https://fulfil.example/default" }

[products.prod_own]
options = { url = "https://fulfil.example/own" }

[products.prod_bare]
name = "No options of its own"
"""))

    assert dict(catalog.product("prod_own").options) == {"url": "https://fulfil.example/own"}
    assert dict(catalog.product("prod_bare").options) == {"url": "https://fulfil.example/default"}
    assert dict(catalog.product("prod_unlisted").options) == {"url": "https://fulfil.example/default"}


def test_cross_sells(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, SAMPLE))

    assert catalog.cross_sells == {"prod_pro": "prod_deploy", "prod_team": "prod_deploy"}


# --- handlers and their options are checked when the catalog loads ------------------------------

def test_a_catalog_whose_handlers_all_have_their_options_passes_the_check(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE.replace('[defaults]\nhandler = "http"\n', '[defaults]\nhandler = "http"\n'
                                          'options = { url = "https://fulfil.example/default" }\n'))

    assert load_catalog(path, HandlerRegistry().check) == load_catalog(path)


def test_an_unlisted_product_would_use_the_default_http_handler_without_a_url(tmp_path: Path) -> None:
    # The sample's prod_team (and every product not listed) falls back to [defaults]: http with no url
    with pytest.raises(ConfigError, match=r"\[defaults\]\.options\.url"):
        load_catalog(write(tmp_path, SAMPLE), HandlerRegistry().check)


@pytest.mark.parametrize(("table", "named", "value"), [
    ('[products.prod_pro]\nhandler = "htpp"\n', "[products.prod_pro].handler", "htpp"),
    ('[products.prod_pro]\nhandler = "http"\noptions = { url = "fulfil.example/hook" }\n',
     "[products.prod_pro].options.url", "fulfil.example/hook"),
    ('[products.prod_pro]\nhandler = "http"\noptions = { url = "https://f.example", timeout = -1 }\n',
     "[products.prod_pro].options.timeout", -1),
    ('[defaults]\nhandler = "http"\n', "[defaults].options.url", None),
    ('[accounts.acct_1Shop.products.prod_mug]\nhandler = "htpp"\n',
     "[accounts.acct_1Shop.products.prod_mug].handler", "htpp"),
    ('[accounts.acct_1Shop.defaults]\nhandler = "http"\noptions = { url = "nowhere" }\n',
     "[accounts.acct_1Shop.defaults].options.url", "nowhere"),
])
def test_a_bad_handler_or_option_names_the_product_and_the_option(tmp_path: Path, table: str, named: str,
                                                                   value: object) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(table)

    with pytest.raises(ConfigError) as caught:
        load_catalog(path, HandlerRegistry().check)

    assert caught.value.name == f"CROSSFILL_CATALOG {named}"
    assert caught.value.value == value
    assert " is invalid: " in str(caught.value)


def test_an_empty_document_is_the_empty_catalog() -> None:
    catalog = parse_catalog({})

    assert catalog == Catalog()
    assert (catalog.default_handler, catalog.default_tax_behavior, catalog.cross_sells) == ("log", "unspecified", {})


def test_no_path_is_the_empty_catalog() -> None:
    assert load_catalog(None) == Catalog()


def test_the_parsed_catalog_cannot_be_changed(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, SAMPLE))

    with pytest.raises(TypeError):
        catalog.products["prod_new"] = ProductConfig(id="prod_new")  # type: ignore[index]
    with pytest.raises(TypeError):
        catalog.product("prod_pro").options["url"] = "http://elsewhere"  # type: ignore[index]


# --- every wrong key, by name -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ('account = "x"', "[account]"),
    ("[account]\ndefault_tax_behavior = \"sometimes\"", "[account].default_tax_behavior"),
    ("[account]\ndefault_tax_behavior = 1", "[account].default_tax_behavior"),
    ("defaults = 3", "[defaults]"),
    ('[defaults]\nhandler = ""', "[defaults].handler"),
    ("[defaults]\nhandler = 7", "[defaults].handler"),
    ('[defaults]\noptions = "url=http://x"', "[defaults].options"),
    ("products = [1, 2]", "[products]"),
    ('[products]\nprod_a = "http"', "[products.prod_a]"),
    ("[products.prod_a]\ncross_sell = 5", "[products.prod_a].cross_sell"),
    ('[products.prod_a]\ncross_sell = ""', "[products.prod_a].cross_sell"),
    ('[products.prod_a]\nhandler = ""', "[products.prod_a].handler"),
    ("[products.prod_a]\nhandler = [\"log\"]", "[products.prod_a].handler"),
    ('[products.prod_a]\noptions = "url=http://x"', "[products.prod_a].options"),
])
def test_a_wrong_key_is_a_config_error_naming_it(text: str, key: str) -> None:
    error = config_error(text)

    assert error.name == f"CROSSFILL_CATALOG {key}"
    assert str(error).startswith(f"CROSSFILL_CATALOG {key}=")


def test_a_product_cannot_cross_sell_itself() -> None:
    error = config_error('[products.prod_a]\ncross_sell = "prod_a"')

    assert error.name == "CROSSFILL_CATALOG [products.prod_a].cross_sell"
    assert "cannot cross-sell itself" in str(error)


def test_the_error_suggests_the_values_to_use() -> None:
    assert "inclusive, exclusive, unspecified" in str(config_error('[account]\ndefault_tax_behavior = "gross"'))


def test_parse_catalog_names_the_source_it_was_given() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog({"defaults": {"handler": ""}}, source="catalog.toml")

    assert caught.value.name == "catalog.toml [defaults].handler"


@pytest.mark.parametrize("content", [b"[products.prod_a\nname = 1", b"\xff\xfe not utf-8"],
                         ids=["bad-toml", "not-utf-8"])
def test_a_file_that_is_not_toml_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "catalog.toml"
    path.write_bytes(content)

    with pytest.raises(ConfigError) as caught:
        load_catalog(path)

    assert caught.value.name == "CROSSFILL_CATALOG"
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="readable TOML file"):
        load_catalog(tmp_path / "nope.toml")


def test_a_file_with_a_wrong_key_is_refused_like_a_document(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(write(tmp_path, '[products.prod_a]\ncross_sell = "prod_a"'))

    assert caught.value.name == "CROSSFILL_CATALOG [products.prod_a].cross_sell"


def test_options_are_copied_not_shared() -> None:
    document: dict[str, Any] = {"products": {"prod_a": {"options": {"url": "http://a"}}}}
    catalog = parse_catalog(document)

    document["products"]["prod_a"]["options"]["url"] = "http://changed"

    assert catalog.product("prod_a").options["url"] == "http://a"


@pytest.mark.parametrize(("document", "where"), [
    ({"products": {"prod_a": {"cross_sel": "prod_b"}}}, "[products.prod_a].cross_sel"),
    ({"acount": {}}, "CROSSFILL_CATALOG.acount"),
    ({"defaults": {"handlr": "log"}}, "[defaults].handlr"),
    ({"account": {"tax": "inclusive"}}, "[account].tax"),
])
def test_an_unknown_key_is_refused_so_a_typo_cannot_drop_a_cross_sell(document: dict, where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_catalog(document)
    assert where in str(raised.value)


CONNECT = SAMPLE + """
[accounts.acct_1Shop.account]
default_tax_behavior = "inclusive"

[accounts.acct_1Shop.defaults]
handler = "log"

[accounts.acct_1Shop.products.prod_Mug]
name = "Mug"
cross_sell = "prod_Spoon"
handler = "http"
options = { url = "https://shop.example/fulfil" }

[accounts.acct_1Shop.products.prod_pro]
name = "The shop's own Pro"

[accounts.acct_2Bare]
"""


def test_a_connected_account_has_its_own_products_over_the_default_catalog() -> None:
    catalog = parse_catalog(tomllib.loads(CONNECT))
    shop = catalog.for_account("acct_1Shop")
    # Its own products and cross-sells,
    assert shop.product("prod_Mug").cross_sell == "prod_Spoon"
    assert dict(shop.product("prod_Mug").options) == {"url": "https://shop.example/fulfil"}
    assert shop.cross_sells["prod_Mug"] == "prod_Spoon"
    # its own version of a product the default catalog has too (its defaults filling the gaps),
    assert (shop.product("prod_pro").name, shop.product("prod_pro").cross_sell) == ("The shop's own Pro", None)
    assert shop.product("prod_pro").handler == "log"
    # the default catalog's other products, and its own defaults.
    assert shop.product("prod_team").cross_sell == "prod_deploy"
    assert (shop.default_tax_behavior, shop.default_handler) == ("inclusive", "log")
    assert shop.product("prod_unknown").handler == "log"
    # The default catalog does not see the account's products.
    assert "prod_Mug" not in catalog.cross_sells
    assert catalog.product("prod_pro").cross_sell == "prod_deploy"


def test_accounts_not_listed_and_the_platform_use_the_default_catalog() -> None:
    catalog = parse_catalog(tomllib.loads(CONNECT))
    assert catalog.for_account(None) is catalog
    assert catalog.for_account("acct_9Unknown") is catalog
    bare = catalog.for_account("acct_2Bare")
    assert (bare.default_tax_behavior, bare.default_handler) == ("exclusive", "http")
    assert bare.product("prod_pro") == catalog.product("prod_pro")


@pytest.mark.parametrize(("text", "name"), [
    ("[accounts.shop1.products.prod_a]\n", "CROSSFILL_CATALOG [accounts.shop1]"),
    ("[accounts]\nacct_1A = 3\n", "CROSSFILL_CATALOG [accounts.acct_1A]"),
    ("accounts = 3\n", "CROSSFILL_CATALOG [accounts]"),
    ("[accounts.acct_1A.products.prod_a]\ncross_sel = \"prod_b\"\n",
     "CROSSFILL_CATALOG [accounts.acct_1A.products.prod_a].cross_sel"),
    ("[accounts.acct_1A.products.prod_a]\ncross_sell = \"prod_a\"\n",
     "CROSSFILL_CATALOG [accounts.acct_1A.products.prod_a].cross_sell"),
    ("[accounts.acct_1A.account]\ndefault_tax_behavior = \"sometimes\"\n",
     "CROSSFILL_CATALOG [accounts.acct_1A.account].default_tax_behavior"),
    ("[accounts.acct_1A.defaults]\nhandler = \"\"\n", "CROSSFILL_CATALOG [accounts.acct_1A.defaults].handler"),
    ("[accounts.acct_1A.accounts.acct_2B]\n", "CROSSFILL_CATALOG [accounts.acct_1A].accounts"),
])
def test_a_wrong_account_table_is_refused_by_name(text: str, name: str) -> None:
    assert config_error(text).name == name


# --- an account's own handler secret ----------------------------------------------------------------------

SHOP_SECRET = "whsec_c2hvcCdzIG93biBoYW5kbGVyIHNlY3JldCEhIQ=="


def test_an_account_names_the_secret_its_calls_are_signed_with() -> None:
    catalog = parse_catalog(tomllib.loads(f'[accounts.acct_1Shop.handler]\nsecret = "{SHOP_SECRET}"\n'
                                          '[accounts.acct_1Other.defaults]\nhandler = "log"\n'))

    assert catalog.for_account("acct_1Shop").handler_secret == SHOP_SECRET
    # An account that names none, an unlisted one and the platform's own sign with CROSSFILL_HANDLER_SECRET
    assert catalog.for_account("acct_1Other").handler_secret is None
    assert catalog.for_account("acct_1Unlisted").handler_secret is None
    assert catalog.handler_secret is None
    assert SHOP_SECRET not in repr(catalog.for_account("acct_1Shop"))


@pytest.mark.parametrize(("text", "key"), [
    ('[accounts.acct_1Shop.handler]\nsecret = "whsec_short"', "[accounts.acct_1Shop.handler].secret"),
    ("[accounts.acct_1Shop.handler]\nsecret = 12345678901234567890123456", "[accounts.acct_1Shop.handler].secret"),
    (f'[accounts.acct_1Shop.handler]\nsecert = "{SHOP_SECRET}"', "[accounts.acct_1Shop.handler].secert"),
    (f'[accounts.acct_1Shop]\nhandler = "{SHOP_SECRET}"', "[accounts.acct_1Shop.handler]"),
])
def test_a_wrong_handler_secret_is_named_and_never_shown(text: str, key: str) -> None:
    error = config_error(text)

    assert error.name == f"CROSSFILL_CATALOG {key}"
    assert "whsec_short" not in str(error) and SHOP_SECRET not in str(error)
