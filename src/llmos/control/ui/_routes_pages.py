"""Nodes (cores, memory, GPUs and who holds them), deployments with their traffic, and the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

if TYPE_CHECKING:
    from llmos.control.ui._web import UI

__all__ = ["add_page_routes"]

AUDIT_PAGE = 200


def add_page_routes(router: APIRouter, ui: UI) -> None:
    @router.get("/nodes")
    def nodes_page(request: Request, partial: bool = False) -> Response:
        from llmos.control._top import machine_view

        viewer = ui.viewer(request)
        view = machine_view(ui.service, viewer.caller)  # other projects' holders unnamed
        return ui.page(request, "_nodes_body.html" if partial else "nodes.html", viewer, top=view,
                       holders={h["id"]: h for h in view["jobs"]})

    @router.get("/deployments")
    def deployments_page(request: Request, partial: bool = False) -> Response:
        from llmos.control._reads import visible_deployments

        viewer = ui.viewer(request)
        manager = ui.service.deployments
        rows = visible_deployments(ui.service, viewer.caller)  # those of the viewer's projects
        for row in rows:
            row["traffic"] = ui.fronts.stats(row["name"], row["url"])
        return ui.page(request, "_deployments_body.html" if partial else "deployments.html", viewer,
                       deployments=rows, available=manager is not None)

    @router.get("/audit")
    def audit_page(request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = AUDIT_PAGE,
                   actor: str = "", action: str = "", outcome: str = "") -> Response:
        viewer = ui.viewer(request)
        filters = {"actor": actor, "action": action, "outcome": outcome}
        rows = _audit(ui, viewer.caller, limit, filters)  # admins only: refused (403) for everyone else
        return ui.page(request, "audit.html", viewer, rows=rows, limit=limit, filters=filters)


def _audit(ui: UI, caller: Any, limit: int, filters: dict[str, str]) -> list[dict[str, Any]]:
    """The audit rows by actor and action (the service filters), then by outcome (here)."""
    rows = ui.service.audit(caller, limit=limit, actor=filters["actor"] or None, action=filters["action"] or None)
    return [r for r in rows if not filters["outcome"] or str(r.get("outcome", "")) == filters["outcome"]]
