"""The catalog config: which product cross-sells which, and who fulfills each product.

Stripe keeps cross-sells in the Dashboard only (no API field marks a product or a line item as a
cross-sell), so crossfill keeps the same relation here. The file is TOML (``CROSSFILL_CATALOG``)::

    [account]
    default_tax_behavior = "exclusive"   # Tax Settings default: inclusive, exclusive or unspecified

    [defaults]
    handler = "log"                      # handler for products not listed
    options = {}                         # handler options for products that set none

    [products.prod_pro]
    name = "Togethere Professional"
    cross_sell = "prod_deploy"           # prod_pro's checkout offers prod_deploy
    handler = "http"
    options = { url = "https://fulfil.example/hooks/crossfill" }

    [products.prod_deploy]
    handler = "log"

A platform's connected accounts (Stripe Connect) each have their own products and cross-sells, and
may have their own tax default and handler defaults: the same tables under ``[accounts.acct_...]``.
What an account does not say is taken from the tables above (the default catalog)::

    [accounts.acct_1Shop.account]
    default_tax_behavior = "inclusive"

    [accounts.acct_1Shop.products.prod_Mug]
    cross_sell = "prod_Spoon"
    handler = "http"
    options = { url = "https://shop.example/fulfil" }

An account's ``[accounts.acct_....handler]`` table may name the secret its ``http`` calls are signed
with (``secret = "whsec_..."``), so that one merchant's endpoint, which knows its own secret, cannot
forge calls to another's; a product's ``options.secret`` still wins, and CROSSFILL_HANDLER_SECRET
signs what neither names.
"""
from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fulfillment.credentials import redact
from fulfillment.errors import ConfigError
from fulfillment.ids import ACCOUNT_ID

DEFAULT_HANDLER = "log"
TAX_BEHAVIORS = ("inclusive", "exclusive", "unspecified")
MIN_HANDLER_SECRET_CHARS = 24  #: shortest secret an account's [handler] table may name, characters


@dataclass(frozen=True)
class ProductConfig:
    """How crossfill treats one product."""

    id: str
    name: str = ""
    cross_sell: str | None = None  #: the product this one offers as a cross-sell
    handler: str = DEFAULT_HANDLER
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Catalog:
    """The whole catalog config; an empty one fulfills everything with the default handler."""

    products: Mapping[str, ProductConfig] = field(default_factory=lambda: MappingProxyType({}))
    default_handler: str = DEFAULT_HANDLER
    default_tax_behavior: str = "unspecified"
    default_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: Connected account id → that account's catalog (its own tables over the default catalog's).
    accounts: Mapping[str, Catalog] = field(default_factory=lambda: MappingProxyType({}))
    #: The secret an account's ``http`` calls are signed with (``[accounts.acct_....handler].secret``).
    handler_secret: str | None = field(default=None, repr=False)

    def for_account(self, account: str | None) -> Catalog:
        """The catalog of a connected account (``acct_...``); the default one for the platform's own
        account (None) and for an account the file does not list."""
        if not account:
            return self
        return self.accounts.get(account, self)

    @property
    def cross_sells(self) -> dict[str, str]:
        """Product id → the product id it cross-sells."""
        return {pid: cfg.cross_sell for pid, cfg in self.products.items() if cfg.cross_sell}

    def product(self, product_id: str) -> ProductConfig:
        """The config of *product_id*, or the defaults when it is not listed."""
        return self.products.get(product_id) or ProductConfig(id=product_id, handler=self.default_handler,
                                                              options=self.default_options)


def parse_catalog(document: Mapping[str, Any], *, source: str = "CROSSFILL_CATALOG") -> Catalog:
    """Build a :class:`Catalog` from parsed TOML, with the catalogs of the accounts it lists.

    Raises:
        ConfigError: naming the key that is wrong.
    """
    _known_keys(document, ("account", "defaults", "products", "accounts"), source)
    catalog = _parse_tables(document, source, "", base=Catalog())
    accounts: dict[str, Catalog] = {}
    for account, tables in _table(document, "accounts", source).items():
        where = f"{source} [accounts.{account}]"
        if not ACCOUNT_ID.match(account):
            raise ConfigError(where, account, "name a connected account by its id, e.g. [accounts.acct_1Abc]")
        if not isinstance(tables, dict):
            raise ConfigError(where, tables, "make it a table")
        _known_keys(tables, ("account", "defaults", "products", "handler"), where)
        own = _parse_tables(tables, source, f"accounts.{account}.", base=catalog)
        accounts[account] = replace(own, handler_secret=_handler_secret(tables, f"{where[:-1]}.handler]"))
    return Catalog(products=catalog.products, default_handler=catalog.default_handler,
                   default_tax_behavior=catalog.default_tax_behavior, default_options=catalog.default_options,
                   accounts=MappingProxyType(accounts))


def _handler_secret(tables: Mapping[str, Any], where: str) -> str | None:
    """The ``secret`` of an account's ``[handler]`` table, or None when it names none."""
    # A secret is never shown, not even a misplaced or a wrong one: only its shape.
    handler = tables.get("handler", {})
    if not isinstance(handler, dict):
        raise ConfigError(where, type(handler).__name__, "make it a table with a secret")
    for key in handler:
        if key != "secret":
            raise ConfigError(f"{where}.{key}", "<not shown>", "unknown key; the known one is secret")
    secret = handler.get("secret")
    if secret is None:
        return None
    if not isinstance(secret, str) or len(secret) < MIN_HANDLER_SECRET_CHARS:
        shown = redact(secret) if isinstance(secret, str) else type(secret).__name__
        raise ConfigError(f"{where}.secret", shown, f"use a random secret of at least {MIN_HANDLER_SECRET_CHARS} "
                          "characters, e.g. whsec_ + the base64 of 24 random bytes")
    return secret


def _parse_tables(document: Mapping[str, Any], source: str, prefix: str, *, base: Catalog) -> Catalog:
    """The ``account``, ``defaults`` and ``products`` tables of *document* (named ``[<prefix>...]`` in
    errors); what they leave out comes from *base* (its defaults, and its products under their own)."""
    account = _table(document, "account", source, prefix)
    defaults = _table(document, "defaults", source, prefix)
    _known_keys(account, ("default_tax_behavior",), f"{source} [{prefix}account]")
    _known_keys(defaults, ("handler", "options"), f"{source} [{prefix}defaults]")
    tax = account.get("default_tax_behavior", base.default_tax_behavior)
    if tax not in TAX_BEHAVIORS:
        raise ConfigError(f"{source} [{prefix}account].default_tax_behavior", tax,
                          f"use one of {', '.join(TAX_BEHAVIORS)}")
    default_handler = defaults.get("handler", base.default_handler)
    if not isinstance(default_handler, str) or not default_handler:
        raise ConfigError(f"{source} [{prefix}defaults].handler", default_handler,
                          "name a handler, e.g. \"log\" or \"http\"")
    default_options = defaults.get("options", base.default_options)
    if not isinstance(default_options, Mapping):
        raise ConfigError(f"{source} [{prefix}defaults].options", default_options, "make it a table")
    products: dict[str, ProductConfig] = dict(base.products)
    for pid, raw in _table(document, "products", source, prefix).items():
        where = f"{source} [{prefix}products.{pid}]"
        if not isinstance(raw, dict):
            raise ConfigError(where, raw, "make it a table")
        _known_keys(raw, ("name", "cross_sell", "handler", "options"), where)
        cross_sell = raw.get("cross_sell")
        if cross_sell is not None and (not isinstance(cross_sell, str) or not cross_sell):
            raise ConfigError(f"{where}.cross_sell", cross_sell, "name a product id such as \"prod_...\"")
        if cross_sell == pid:
            raise ConfigError(f"{where}.cross_sell", cross_sell, "a product cannot cross-sell itself")
        handler = raw.get("handler", default_handler)
        options = raw.get("options", default_options)
        if not isinstance(handler, str) or not handler:
            raise ConfigError(f"{where}.handler", handler, "name a handler, e.g. \"log\" or \"http\"")
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}.options", options, "make it a table")
        products[pid] = ProductConfig(id=pid, name=str(raw.get("name", "")), cross_sell=cross_sell,
                                      handler=handler, options=MappingProxyType(dict(options)))
    return Catalog(products=MappingProxyType(products), default_handler=default_handler,
                   default_tax_behavior=tax, default_options=MappingProxyType(dict(default_options)))


#: Checks a handler name and its options; raises ConfigError naming ``handler`` or the option.
HandlerCheck = Callable[[str, Mapping[str, Any]], None]


def load_catalog(path: Path | None, check_handler: HandlerCheck | None = None) -> Catalog:
    """Read the catalog TOML at *path*; None gives the empty catalog.

    With *check_handler* (``HandlerRegistry.check``), every product's handler and options are
    checked now, so a typo stops the worker at start instead of dead-lettering items later.

    Raises:
        ConfigError: when the file cannot be read or parsed, or a key, handler or option is wrong.
    """
    if path is None:
        catalog = Catalog()
    else:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError("CROSSFILL_CATALOG", str(path), f"make it a readable TOML file ({error})") from None
        catalog = parse_catalog(document)
    if check_handler is not None:
        check_handlers(catalog, check_handler)
    return catalog


def check_handlers(catalog: Catalog, check_handler: HandlerCheck, *, source: str = "CROSSFILL_CATALOG") -> None:
    """Check the default handler and every product's handler and options with *check_handler*, the
    connected accounts' own included.

    Raises:
        ConfigError: naming the product and the option, e.g. ``[products.prod_pro].options.url``.
    """
    tables = [("[defaults]", catalog.default_handler, catalog.default_options)]
    tables += [(f"[products.{cfg.id}]", cfg.handler, cfg.options) for cfg in catalog.products.values()]
    for account, own in catalog.accounts.items():
        # An account's defaults and its own products; those it inherits were checked above.
        tables.append((f"[accounts.{account}.defaults]", own.default_handler, own.default_options))
        tables += [(f"[accounts.{account}.products.{cfg.id}]", cfg.handler, cfg.options)
                   for pid, cfg in own.products.items() if cfg is not catalog.products.get(pid)]
    for where, handler, options in tables:
        try:
            check_handler(handler, options)
        except ConfigError as error:
            name = "handler" if error.name == "handler" else f"options.{error.name}"
            raise ConfigError(f"{source} {where}.{name}", error.value, error.fix) from None


def _known_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    # A typo such as `cross_sel` would silently drop a cross-sell relation: refuse unknown keys.
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key}", table[key], f"unknown key; the known ones are {', '.join(known)}")


def _table(document: Mapping[str, Any], key: str, source: str, prefix: str = "") -> Mapping[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source} [{prefix}{key}]", value, "make it a table")
    return value
