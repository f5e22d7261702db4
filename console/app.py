"""The console's Flask app factory: pages for people, ``/api/v1`` for programs, one sign-in for both."""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, Request, Response, g, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from kombu.exceptions import OperationalError
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from console.audit import AuditLog, log_to_stderr
from console.auth import CallRate, SignInThrottle, TokenTable
from console.errors import BadRequest, ConsoleError, Unavailable
from console.service import ConsoleService
from console.sessions import SessionStore
from console.settings import ConsoleSettings, load_console_settings, resolve_secret
from console.state import EXTENSION, Console
from fulfillment.errors import ConfigError, StoreUnavailable
from fulfillment.problems import Problem, from_http_exception, internal
from fulfillment.report import CrossSellReport
from fulfillment.settings import Settings, load_settings
from ops.runtime import Runtime

log = logging.getLogger(__name__)

class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure when the request came over https (to the first
    trusted proxy, when there are some) or when CROSSFILL_CONSOLE_SECURE_COOKIE says so."""

    def __init__(self, always_secure: bool) -> None:
        self._always_secure = always_secure

    def get_cookie_secure(self, app: Flask) -> bool:
        return self._always_secure or (bool(request) and request.is_secure)


def create_console_app(settings: Settings | None = None, console_settings: ConsoleSettings | None = None) -> Flask:
    """Build the console. With no arguments, both settings are read from the environment (the edge).

    Raises:
        ConfigError: when a setting is unusable, or nobody could sign in (no token) on a non-loopback bind.
    """
    settings = load_settings() if settings is None else settings
    console_settings = load_console_settings() if console_settings is None else console_settings
    console_settings = resolve_secret(console_settings, settings.data_dir)
    assert console_settings.secret_key is not None
    if not console_settings.tokens and not console_settings.is_loopback:
        raise ConfigError("CROSSFILL_CONSOLE_TOKENS", "", "set name:role:token entries before binding beyond 127.0.0.1")
    log_to_stderr()
    runtime = Runtime(settings)
    client = runtime.redis
    state = Console(settings=settings, console=console_settings, service=ConsoleService(runtime),
                    tokens=TokenTable(console_settings.tokens, console_settings.secret_key),
                    audit=AuditLog(client), throttle=SignInThrottle(client),
                    report=CrossSellReport(client, runtime.catalog),
                    merchant_rate=CallRate(client, console_settings.merchant_rate),
                    sessions=SessionStore(client, console_settings.session_lifetime_s))

    try:
        # Orders recorded before the creation-time index existed are added to it once.
        state.service.runtime.ledger.backfill_created_index()
    except StoreUnavailable:
        log.warning("console: Redis is unreachable; the orders index is checked at the next start")

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=console_settings.secret_key,
        SESSION_COOKIE_NAME="crossfill_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=console_settings.session_lifetime_s),
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.session_interface = _SessionInterface(console_settings.secure_cookie)
    if console_settings.trusted_proxies:
        # Believe X-Forwarded-For/-Proto only as far as the proxies we were told of: the client's address
        # (the sign-in throttle's key) and the scheme are what the outermost trusted proxy saw.
        hops = console_settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = state

    from console import api, pages

    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    app.register_blueprint(pages.blueprint)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; style-src 'self'; img-src 'self' data:; "
                                    "form-action 'self'; frame-ancestors 'none'")
        if request.path.startswith("/api/") or getattr(g, "principal", None) is not None:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def wants_json(req: Request) -> bool:
        return req.path.startswith("/api/")

    def render_error(error: Problem) -> Response | tuple[str, int, dict[str, str]]:
        if wants_json(request):
            response = jsonify(error.to_json())
            response.status_code = error.status
            response.headers.update(error.headers)
            return response
        return render_template("error.html", error=error), error.status, error.headers

    @app.errorhandler(ConsoleError)
    def console_error(error: ConsoleError) -> Response | tuple[str, int, dict[str, str]]:
        return render_error(error)

    @app.errorhandler(ValidationError)
    def invalid(error: ValidationError) -> Response | tuple[str, int, dict[str, str]]:
        messages = error.messages if isinstance(error.messages, dict) else {"_": error.messages}
        problems = "; ".join(f"{name}: {' '.join(map(str, text if isinstance(text, list) else [text]))}"
                             for name, text in messages.items())
        return render_error(BadRequest(f"invalid parameters: {problems}", fields=messages))

    @app.errorhandler(StoreUnavailable)
    @app.errorhandler(OperationalError)
    def unavailable(error: Exception) -> Response | tuple[str, int, dict[str, str]]:
        log.warning("console: dependency down: %s", type(error).__name__)
        return render_error(Unavailable("Redis is unreachable; retry in a few seconds", headers={"Retry-After": "5"}))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | tuple[str, int, dict[str, str]]:
        return render_error(from_http_exception(error))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response | tuple[str, int, dict[str, str]]:
        log.exception("console: unexpected error serving %s %s", request.method, request.path)
        return render_error(internal())

    return app
