"""What every dashboard route shares: templates, the logged-in user, forms, HTML errors, headers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from llmos.control._auth import ROLES, Caller
from llmos.control._errors import ControlError, Forbidden, Unauthorized
from llmos.control.ui._front import FrontScraper
from llmos.control.ui._sessions import COOKIE, Session, SessionStore, same_token

if TYPE_CHECKING:
    from llmos.control._service import Service

__all__ = ["UI", "LoginNeeded", "Viewer", "secure_headers", "source"]

_HERE = Path(__file__).parent
_MAX_FORM_BYTES = 64 * 1024
# No inline script or style and nothing from elsewhere: an injected tag could not run or load anything.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def secure_headers(response: Response) -> Response:
    response.headers.update({"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
                             "X-Frame-Options": "DENY"})
    return response


class LoginNeeded(Exception):
    """No live session: pages redirect to the login page, polls answer 401."""


@dataclass(frozen=True)
class Viewer:
    session: Session
    caller: Caller

    def may(self, role: str) -> bool:
        return ROLES.index(self.caller.role) >= ROLES.index(role)


class UI:
    def __init__(self, service: Service) -> None:
        import jinja2

        self.service = service
        self.sessions = SessionStore()
        self.fronts = FrontScraper()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"),
                                      autoescape=jinja2.select_autoescape(default=True), trim_blocks=True,
                                      lstrip_blocks=True)
        self.env.filters.update(when=_when, ago=_ago, gb=_gb)
        self.env.globals["roles"] = ROLES

    def viewer(self, request: Request) -> Viewer:
        """The logged-in user, their token checked again (a revoked token ends the session now)."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise LoginNeeded
        try:
            caller = self.service.caller(session.token, source(request))
        except Unauthorized:
            self.sessions.close(session.id)
            raise LoginNeeded from None
        request.state.caller = caller  # the Guard middleware audits a refused call as this caller
        return Viewer(session, caller)

    async def form(self, request: Request, viewer: Viewer | None = None) -> dict[str, str]:
        """The posted form; with a viewer, refused (403) unless it carries the session's CSRF token."""
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            raise ControlError("the form is too large.", hint="Send at most 64 KiB.")
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if viewer is not None and not same_token(viewer.session.csrf, fields.get("csrf")):
            raise Forbidden("this form did not carry this session's CSRF token.",
                            hint="Reload the page and submit the form again.")
        return fields

    def page(self, request: Request, template: str, viewer: Viewer | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request, viewer=viewer, path=request.url.path, **context)
        return secure_headers(HTMLResponse(html, status_code=status))

    def error(self, request: Request, exc: Any, viewer: Viewer | None = None) -> HTMLResponse:
        status = getattr(exc, "status", 400)
        # What the Guard middleware writes in the audit row of this refusal (as for the API's).
        request.state.audit, request.state.error = getattr(exc, "audit", None), exc.message
        return self.page(request, "error.html", viewer, status=status, message=exc.message, hint=exc.hint or "")

    def login_redirect(self, request: Request) -> Response:
        if request.method != "GET" or request.headers.get("x-llmos-poll"):
            return secure_headers(HTMLResponse("your session ended: log in again", status_code=401))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def source(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def _when(seconds: float | None) -> str:
    return "" if not seconds else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _ago(seconds: float | None) -> str:
    if not seconds:
        return ""
    delta = max(0.0, time.time() - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta / size:.0f}{unit} ago"
    return f"{delta:.0f}s ago"


def _gb(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} GB"
