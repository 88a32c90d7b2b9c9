"""The web dashboard, served by the daemon at /ui: jobs, nodes, deployments, models and the audit log.

Server-rendered HTML (Jinja2 templates in this package) and one small script that polls fragments
of the same pages and follows logs; nothing is loaded from anywhere else. Logging in takes a token
(the same tokens as the API) and opens a server-side session (`_sessions`); viewers see every page but
the audit log, developers and admins act, and every action is checked on the server by the same
`Service` calls the REST API makes. The REST API itself keeps accepting only `Authorization: Bearer`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["mount"]

if TYPE_CHECKING:
    from fastapi import FastAPI

    from llmos.control._service import Service


def mount(app: FastAPI, service: Service) -> None:
    """Add the dashboard's routes under /ui and its static files under /ui/static to `app`."""
    from fastapi import APIRouter
    from fastapi.staticfiles import StaticFiles

    from llmos.control.ui._routes_auth import add_auth_routes
    from llmos.control.ui._routes_jobs import add_job_routes
    from llmos.control.ui._routes_models import add_model_routes
    from llmos.control.ui._routes_pages import add_page_routes
    from llmos.control.ui._web import UI

    ui = UI(service)
    router = APIRouter(prefix="/ui", route_class=_html_route(ui), include_in_schema=False)
    for add in (add_auth_routes, add_job_routes, add_page_routes, add_model_routes):
        add(router, ui)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static")


def _html_route(ui: Any) -> type:
    """A route class whose errors are pages: no session -> the login page; a refused call -> its
    message, hint and status as HTML (never the API's JSON, never a traceback)."""
    from fastapi.routing import APIRoute
    from starlette.requests import Request
    from starlette.responses import Response

    from llmos.control.ui._web import LoginNeeded
    from llmos.errors import LlmosError

    class HtmlRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(request)
                except LoginNeeded:
                    return ui.login_redirect(request)
                except LlmosError as exc:
                    return ui.error(request, exc)

            return guarded

    return HtmlRoute
