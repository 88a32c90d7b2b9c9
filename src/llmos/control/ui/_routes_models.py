"""Registered models: the list, one model's versions, aliases, lineage graph and compression reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmos.control._errors import NotFound
from llmos.control.ui._models import ParetoCache
from llmos.control.ui._web import secure_headers

if TYPE_CHECKING:
    from llmos.control.ui._web import UI

__all__ = ["add_model_routes"]


def add_model_routes(router: APIRouter, ui: UI) -> None:
    plots = ParetoCache()

    @router.get("/models")
    def models_page(request: Request) -> Response:
        from llmos.control._db import redact
        from llmos.paths import tracking_uri
        from llmos.registry import list_models

        viewer = ui.viewer(request)
        return ui.page(request, "models.html", viewer, models=list_models(), tracking_uri=redact(tracking_uri()))

    @router.get("/models/{name}")
    def model_page(request: Request, name: str) -> Response:
        from llmos.control.ui._models import model_page

        viewer = ui.viewer(request)
        return ui.page(request, "model.html", viewer, model=model_page(name))

    @router.get("/models/{name}/runs/{run_id}/pareto.png")
    def pareto(request: Request, name: str, run_id: str) -> Response:
        ui.viewer(request)
        plot = plots.get(name, run_id)
        if plot is None:
            raise NotFound(f"run {run_id} of model {name} has no Pareto plot.",
                           hint=f"Its compression report is listed on /ui/models/{name}.")
        return secure_headers(Response(plot, media_type="image/png"))
