"""The REST API: a thin FastAPI shell over `Service` (OpenAPI document at /openapi.json, docs at /docs).

Every route but /healthz, /metrics (Prometheus: counts and timings only, no job names or specs)
and the OpenAPI pages needs `Authorization: Bearer TOKEN`. A non-admin reads only the jobs and
deployments of the projects it is a member of (`_projects.readable_projects`). Errors come
back as {"error", "hint", "problems"} with the status of the error (401 no, unknown or revoked
token, 403 a role too low, 404 unknown job or token, or another project's job or deployment, 409 a
cancel of a finished job or the revocation of the last admin token, 422 an invalid spec or a job
larger than the machine).
"""

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmos import __version__
from llmos.control._auth import ROLES, Caller
from llmos.control._handlers import install
from llmos.control._input import INT64_MAX, submission_problems
from llmos.control._metrics import registry_for, render
from llmos.control._reads import readable_deployments, visible_deployments
from llmos.control._routes_projects import USER
from llmos.errors import SpecError

if TYPE_CHECKING:
    from llmos.control._service import Service

__all__ = ["create_app"]

# Ids, offsets and cursors fit the database's 64-bit integers: larger ones are a 422, not a 500.
Id = Annotated[int, Path(ge=1, le=INT64_MAX)]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX)]


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "5" is not an integer, 0 not false

    spec: dict[str, Any] = Field(description="the job spec as a mapping (absolute paths)")
    overrides: list[str] = Field(default_factory=list, description="dotted overrides, e.g. train.lr=3e-5")
    priority: str = Field("normal", description="low, normal, high or critical")
    project: str | None = Field(None, max_length=100,
                                description="the project it runs in, whose quota and fair share count it "
                                            "(default: your default project)")
    max_retries: int | None = Field(None, ge=0, le=1000,
                                    description="retries after failures (default: the daemon's)")

    @model_validator(mode="after")
    def _limits(self) -> "SubmitBody":
        _check_limits(self.spec, self.overrides)
        return self


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: str = Field(description=" | ".join(ROLES))
    name: str = Field(description="a label for the token (the user's name when no owner is given)", **USER)
    owner: str | None = Field(None, description="the user it acts as (default: name)", **USER)


class DeployBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    spec: dict[str, Any] = Field(description="a kind: serve spec (model: NAME@ALIAS, replicas, ...)")
    overrides: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _limits(self) -> "DeployBody":
        _check_limits(self.spec, self.overrides)
        return self


def _check_limits(spec: dict[str, Any], overrides: list[str]) -> None:
    problems = submission_problems(spec)
    if len(overrides) > 100 or any(len(o) > 4096 for o in overrides):
        problems.append(("overrides", "at most 100 overrides of at most 4096 characters each"))
    if problems:
        raise SpecError("the submission is above a limit:", problems=problems,
                        hint="Shorten the values named above.")


def create_app(service: "Service", info: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="llmos control plane", version=__version__,
                  description="Queue, place and run jobs on this machine; keep deployments alive.")

    install(app, service)  # error answers, the Guard middleware (body limit, bad input, audit), OpenAPI

    def caller(request: Request,
               authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> Caller:
        # Only `Bearer TOKEN`: a bare token, another scheme, a query parameter or a cookie is no token.
        scheme, _, value = (authorization or "").strip().partition(" ")
        token = value.strip() or None if scheme.lower() == "bearer" else None
        host = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
        request.state.caller = who = service.caller(token, host)  # the Guard audits a refusal as this caller
        return who

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
        # The machine is everyone's to see; jobs and deployments only those of the caller's projects.
        return {**info, "inventory": service.hosts().describe(), "counts": service.counts(who),
                "deployments": visible_deployments(service, who), "you": {"owner": who.owner, "role": who.role}}

    @app.get("/v1/top", summary="the machine now and which job holds what")
    def top(who: Who) -> dict:
        from llmos.control._top import machine_view

        return machine_view(service, who)

    @app.post("/v1/jobs", status_code=201, summary="submit a job; returns its id at once")
    def submit(body: SubmitBody, who: Who) -> dict:
        return service.submit(who, body.spec, body.overrides, body.priority, body.project, body.max_retries)

    @app.get("/v1/jobs", summary="jobs, newest first")
    def list_jobs(who: Who, state: str | None = None, owner: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                  before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None) -> list[dict]:
        return service.jobs(who, state, owner, limit, before)

    @app.get("/v1/jobs/{job_id}", summary="one job with its history and attempts")
    def show(job_id: Id, who: Who) -> dict:
        return service.job(job_id, who)

    @app.post("/v1/jobs/{job_id}/cancel", summary="cancel a job (developers: their own)")
    def cancel(job_id: Id, who: Who) -> dict:
        return service.cancel(who, job_id)

    @app.get("/v1/jobs/{job_id}/logs", summary="a job's log files (all attempts, all workers)")
    def logs(job_id: Id, who: Who) -> list[dict]:
        return service.log_files(job_id, who)  # 404 for an unknown job or one of another project

    @app.get("/v1/jobs/{job_id}/logs/{name:path}", summary="a log file from `offset` on")
    def log_text(job_id: Id, name: str, who: Who, offset: Offset = 0) -> dict:
        return service.read_log(job_id, name, offset, who)

    @app.post("/v1/tokens", status_code=201, summary="make a token (admin); shown once")
    def tokens(body: TokenBody, who: Who) -> dict:
        return service.create_token(who, body.role, body.name, body.owner)

    @app.get("/v1/tokens", summary="tokens: id, name, owner, role, prefix, times; never a secret (admin)")
    def list_tokens(who: Who, include_revoked: Annotated[bool, Query(
            alias="all", description="also revoked tokens")] = False) -> list[dict]:
        return service.tokens(who, include_revoked)

    @app.post("/v1/tokens/{token_id}/revoke", summary="revoke a token: it answers 401 from now on (admin)")
    def revoke_token(token_id: Id, who: Who) -> dict:
        return service.revoke_token(who, token_id)

    @app.get("/v1/audit", summary="the audit log, newest first (admin)")
    def audit(who: Who, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
              since: Annotated[float | None, Query(ge=0, le=1e11, description="only rows at or after this "
                                                   "time (seconds since the epoch)")] = None,
              actor: Annotated[str | None, Query(max_length=100, description="only this user's rows")] = None,
              action: Annotated[str | None, Query(max_length=64, description=(
                  "only this action (submit, tokens.revoke, ...); `tokens.*` matches by prefix"))] = None,
              ) -> list[dict]:
        return service.audit(who, limit, since, actor, action)

    @app.get("/v1/audit/verify", summary="check the audit log's hash chain; names the first bad row (admin)")
    def audit_verify(who: Who) -> dict:
        return service.audit_verify(who)

    @app.get("/v1/deployments", summary="deployments and their replicas")
    def deployments(who: Who) -> list[dict]:
        return visible_deployments(service, who)

    @app.get("/v1/deployments/{name}", summary="one deployment, its replicas and its latest events")
    def deployment(name: str, who: Who) -> dict:
        return readable_deployments(service, who, name).show(name)

    @app.get("/v1/deployments/{name}/logs", summary="a deployment's log files (front router, replicas)")
    def deployment_logs(name: str, who: Who) -> list[dict]:
        return readable_deployments(service, who, name).log_files(name)

    @app.get("/v1/deployments/{name}/logs/{file:path}", summary="a deployment's log file from `offset` on")
    def deployment_log_text(name: str, file: str, who: Who, offset: Offset = 0) -> dict:
        return readable_deployments(service, who, name).read_log(name, file, offset)

    @app.post("/v1/deployments", status_code=201, summary="create or roll a deployment (a kind: serve spec)")
    def deploy(body: DeployBody, who: Who) -> dict:
        return service.submit(who, {"kind": "serve", **body.spec}, body.overrides)

    @app.delete("/v1/deployments/{name}", summary="stop a deployment (its replicas drain)")
    def undeploy(name: str, who: Who) -> dict:
        return service.undeploy(who, name)

    # Two routes, not one `{action}` route: a POST to any other path under a deployment (its logs)
    # must answer 405, not a 422 about an action.
    @app.post("/v1/deployments/{name}/promote", summary="promote a deployment's running canary to 100% now")
    def deployment_promote(name: str, who: Who) -> dict:
        return service.canary(who, name, "promote")

    @app.post("/v1/deployments/{name}/rollback", summary="roll a deployment's running canary back now")
    def deployment_rollback(name: str, who: Who) -> dict:
        return service.canary(who, name, "rollback")

    from llmos.control._routes_projects import add_project_routes

    add_project_routes(app, service, Who)
    from llmos.control._routes_secrets import add_secret_routes

    add_secret_routes(app, service, Who)
    from llmos.control.ui import mount as mount_ui  # the dashboard at /ui (cookie sessions there only)

    mount_ui(app, service)
    return app
