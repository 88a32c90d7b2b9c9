"""Log in with a token, log out."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from llmos.control._errors import Forbidden, Unauthorized
from llmos.control.ui._sessions import COOKIE, IDLE_S, LOGIN_COOKIE, cookie_attributes, same_token
from llmos.control.ui._web import secure_headers, source

if TYPE_CHECKING:
    from llmos.control.ui._web import UI

__all__ = ["add_auth_routes", "safe_next"]


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a dashboard path on this server (no open redirect)."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return "/ui/jobs"
    return target


def add_auth_routes(router: APIRouter, ui: UI) -> None:
    @router.get("")
    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/ui/jobs", status_code=303)

    @router.get("/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        return _login_form(ui, request, safe_next(next))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await ui.form(request)
        target = safe_next(form.get("next"))
        if not same_token(request.cookies.get(LOGIN_COOKIE, ""), form.get("login_csrf")):
            raise Forbidden("the login form expired or came from another site.", hint="Open /ui/login and try again.")
        token = form.get("token", "").strip()
        try:
            caller = await run_in_threadpool(ui.service.caller, token or None, source(request))
        except Unauthorized as exc:
            return _login_form(ui, request, target, error=exc.message, status=401)
        session = ui.sessions.open(token, caller.owner, caller.role)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, session.id, **cookie_attributes(_tls(request), int(IDLE_S)))  # type: ignore[arg-type]
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return secure_headers(response)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = ui.viewer(request)
        await ui.form(request, viewer)
        ui.sessions.close(viewer.session.id)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui", secure=_tls(request), httponly=True, samesite="strict")
        return secure_headers(response)


def _login_form(ui: UI, request: Request, target: str, error: str = "", status: int = 200) -> Response:
    login_csrf = secrets.token_urlsafe(24)
    response = ui.page(request, "login.html", None, status=status, next=target, login_csrf=login_csrf, error=error)
    response.set_cookie(LOGIN_COOKIE, login_csrf, **cookie_attributes(_tls(request), 3600))  # type: ignore[arg-type]
    return response


def _tls(request: Request) -> bool:
    return request.url.scheme == "https"
