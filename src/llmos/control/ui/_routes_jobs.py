"""The queue and its jobs: a paged table, one job with its attempts and live logs, and cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from llmos.control._states import TERMINAL, JobState

if TYPE_CHECKING:
    from llmos.control.ui._web import UI

__all__ = ["add_job_routes", "page_of"]

PAGE_SIZES = (25, 50, 100, 200)
_DONE = {s.value for s in TERMINAL}


def page_of(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """`rows` fetched as limit + 1, newest first -> (the page, the `before` of the next older page or None)."""
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1]["id"]
    return rows, None


def add_job_routes(router: APIRouter, ui: UI) -> None:
    @router.get("/jobs")
    def jobs_page(request: Request, state: str | None = None, owner: str | None = None,
                  before: Annotated[int | None, Query(ge=1)] = None, limit: int = 50,
                  partial: bool = False) -> Response:
        viewer = ui.viewer(request)
        limit = min(PAGE_SIZES, key=lambda size: abs(size - limit))
        rows = ui.service.jobs(viewer.caller, state or None, owner or None, limit + 1, before)
        page, older = page_of(rows, limit)
        context = {"jobs": page, "older": older, "before": before, "state": state or "", "owner": owner or "",
                   "limit": limit, "sizes": PAGE_SIZES, "states": [s.value for s in JobState]}
        if partial:
            return ui.page(request, "_jobs_table.html", viewer, **context)
        return ui.page(request, "jobs.html", viewer, counts=ui.service.counts(viewer.caller), **context)

    @router.get("/jobs/{job_id}")
    def job_page(request: Request, job_id: int, partial: bool = False) -> Response:
        viewer = ui.viewer(request)
        job = ui.service.job(job_id, viewer.caller)  # env values masked unless it is theirs (or an admin)
        context = {"job": job, "done": job["state"] in _DONE,
                   "may_cancel": viewer.may("developer") and job["state"] not in _DONE}
        return ui.page(request, "_job_body.html" if partial else "job.html", viewer, **context)

    @router.post("/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: int) -> Response:
        viewer = ui.viewer(request)
        await ui.form(request, viewer)
        # The same call as POST /v1/jobs/ID/cancel: a viewer is refused (403) and audited there.
        await run_in_threadpool(ui.service.cancel, viewer.caller, job_id)
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)

    @router.get("/jobs/{job_id}/logs")
    def log_files(request: Request, job_id: int) -> Response:
        viewer = ui.viewer(request)  # a 404 for an unknown job or one of a project not theirs
        return JSONResponse(ui.service.log_files(job_id, viewer.caller))

    @router.get("/jobs/{job_id}/log")
    def log_text(request: Request, job_id: int, name: str, offset: Annotated[int, Query(ge=0)] = 0) -> Response:
        viewer = ui.viewer(request)
        return JSONResponse(ui.service.read_log(job_id, name, offset, viewer.caller))
