"""The REST API: a thin FastAPI shell over `Service` (OpenAPI document at /openapi.json, docs at /docs).

Every route but /healthz, /metrics (Prometheus: counts and timings only, no job names or specs)
and the OpenAPI pages needs `Authorization: Bearer TOKEN`. Errors come
back as {"error", "hint", "problems"} with the status of the error (401 no, unknown or revoked
token, 403 a role too low, 404 unknown job or token, 409 a cancel of a finished job or the
revocation of the last admin token, 422 an invalid spec or a job larger than the machine).
"""

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from llmos import __version__
from llmos.control._auth import ROLES, Caller
from llmos.control._errors import NotFound
from llmos.control._metrics import registry_for, render
from llmos.errors import LlmosError, SpecError

if TYPE_CHECKING:
    from llmos.control._service import Service

__all__ = ["create_app"]


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="the job spec as a mapping (absolute paths)")
    overrides: list[str] = Field(default_factory=list, description="dotted overrides, e.g. train.lr=3e-5")
    priority: str = Field("normal", description="low, normal, high or critical")
    project: str | None = Field(None, description="whose fair share the job counts against (default: you)")
    max_retries: int | None = Field(None, ge=0, description="retries after failures (default: the daemon's)")


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(description=" | ".join(ROLES))
    name: str = Field(min_length=1, max_length=100, description="a label for the token")
    owner: str | None = Field(None, description="the user it acts as (default: name)")


class DeployBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="a kind: serve spec (model: NAME@ALIAS, replicas, ...)")
    overrides: list[str] = Field(default_factory=list)


def create_app(service: "Service", info: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="llmos control plane", version=__version__,
                  description="Queue, place and run jobs on this machine; keep deployments alive.")

    @app.exception_handler(LlmosError)
    async def _error(_request: Request, exc: LlmosError) -> JSONResponse:
        status = getattr(exc, "status", 422 if isinstance(exc, SpecError) else 400)
        problems = [{"path": p, "message": m} for p, m in getattr(exc, "problems", [])]
        message = exc.message.split("\n", 1)[0] if problems else exc.message
        return JSONResponse({"error": message, "hint": exc.hint, "problems": problems}, status_code=status)

    def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
        token = authorization.removeprefix("Bearer ").strip() if authorization else None
        host = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
        return service.caller(token, host)

    Who = Annotated[Caller, Depends(caller)]

    @app.get("/healthz", summary="liveness (no token needed)")
    def healthz() -> dict:
        return {"ok": True, "version": __version__, "pid": info.get("pid")}

    registry = registry_for(service)

    @app.get("/metrics", summary="Prometheus metrics (no token needed: counts and timings only)",
             response_class=PlainTextResponse)
    def metrics() -> Response:
        body, content_type = render(registry)
        return Response(body, media_type=content_type)

    @app.get("/v1/status", summary="the daemon, the machine and job counts")
    def status(who: Who) -> dict:
        deployments = service.deployments.list() if service.deployments is not None else []
        return {**info, "inventory": service.hosts().describe(), "counts": service.counts(),
                "deployments": deployments, "you": {"owner": who.owner, "role": who.role}}

    @app.get("/v1/top", summary="the machine now and which job holds what")
    def top(who: Who) -> dict:
        from llmos.control._top import machine_view

        return machine_view(service)

    @app.post("/v1/jobs", status_code=201, summary="submit a job; returns its id at once")
    def submit(body: SubmitBody, who: Who) -> dict:
        return service.submit(who, body.spec, body.overrides, body.priority, body.project, body.max_retries)

    @app.get("/v1/jobs", summary="jobs, newest first")
    def list_jobs(who: Who, state: str | None = None, owner: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 100, before: int | None = None) -> list[dict]:
        return service.jobs(who, state, owner, limit, before)

    @app.get("/v1/jobs/{job_id}", summary="one job with its history and attempts")
    def show(job_id: int, who: Who) -> dict:
        return service.job(job_id)

    @app.post("/v1/jobs/{job_id}/cancel", summary="cancel a job (developers: their own)")
    def cancel(job_id: int, who: Who) -> dict:
        return service.cancel(who, job_id)

    @app.get("/v1/jobs/{job_id}/logs", summary="a job's log files (all attempts, all workers)")
    def logs(job_id: int, who: Who) -> list[dict]:
        service.job(job_id)  # 404 for an unknown job
        return service.log_files(job_id)

    @app.get("/v1/jobs/{job_id}/logs/{name:path}", summary="a log file from `offset` on")
    def log_text(job_id: int, name: str, who: Who, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
        return service.read_log(job_id, name, offset)

    @app.post("/v1/tokens", status_code=201, summary="make a token (admin); shown once")
    def tokens(body: TokenBody, who: Who) -> dict:
        return service.create_token(who, body.role, body.name, body.owner)

    @app.get("/v1/tokens", summary="tokens: id, name, owner, role, prefix, times; never a secret (admin)")
    def list_tokens(who: Who, include_revoked: Annotated[bool, Query(
            alias="all", description="also revoked tokens")] = False) -> list[dict]:
        return service.tokens(who, include_revoked)

    @app.post("/v1/tokens/{token_id}/revoke", summary="revoke a token: it answers 401 from now on (admin)")
    def revoke_token(token_id: int, who: Who) -> dict:
        return service.revoke_token(who, token_id)

    @app.get("/v1/audit", summary="the audit log, newest first (admin)")
    def audit(who: Who, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict]:
        return service.audit(who, limit)

    @app.get("/v1/deployments", summary="deployments and their replicas")
    def deployments(who: Who) -> list[dict]:
        return service.deployments.list() if service.deployments is not None else []

    @app.get("/v1/deployments/{name}", summary="one deployment, its replicas and its latest events")
    def deployment(name: str, who: Who) -> dict:
        return _deployments().show(name)

    @app.get("/v1/deployments/{name}/logs", summary="a deployment's log files (front router, replicas)")
    def deployment_logs(name: str, who: Who) -> list[dict]:
        return _deployments().log_files(name)

    @app.get("/v1/deployments/{name}/logs/{file:path}", summary="a deployment's log file from `offset` on")
    def deployment_log_text(name: str, file: str, who: Who, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
        return _deployments().read_log(name, file, offset)

    def _deployments() -> Any:
        if service.deployments is None:
            raise NotFound("this control plane runs no deployments.", hint="See: llmos status")
        return service.deployments

    @app.post("/v1/deployments", status_code=201, summary="create or roll a deployment (a kind: serve spec)")
    def deploy(body: DeployBody, who: Who) -> dict:
        return service.submit(who, {"kind": "serve", **body.spec}, body.overrides)

    @app.delete("/v1/deployments/{name}", summary="stop a deployment (its replicas drain)")
    def undeploy(name: str, who: Who) -> dict:
        return service.undeploy(who, name)

    return app
