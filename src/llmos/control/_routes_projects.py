"""REST routes for projects and users: a thin shell over `Service.project_admin`."""

# No `from __future__ import annotations`: FastAPI reads the routes' parameter types, and the
# caller dependency `who` is a local of `add_project_routes`.
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from llmos.control._auth import ROLES

if TYPE_CHECKING:
    from llmos.control._service import Service

__all__ = ["add_project_routes"]

_REFUSED = {403: {"description": "not a member of the project (or not an admin)"}}
_NAME = {"min_length": 1, "max_length": 100, "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
# A user is a token's owner: any printable name that can also appear in a URL path segment.
USER = {"min_length": 1, "max_length": 100, "pattern": r"^[^\x00-\x1f\x7f/]+$"}


class ProjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: 0 is not false

    name: str = Field(description="the project's name (letters, digits, _ . -)", **_NAME)


class MemberBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: 0 is not false

    user: str = Field(description="the user (a token's owner)", **USER)
    role: str = Field(description=" | ".join(ROLES) + " in this project")


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: 0 is not false

    priority: str = Field(description="the highest class the project may use: normal, high or critical")


class QuotaBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: 0 is not false

    weight: float | None = Field(None, gt=0, le=1e6, description="fair-share weight (1 until set)")
    guarantee_cpus: float | None = Field(None, ge=0, le=1e9, description="CPUs it may reclaim from borrowers")
    guarantee_memory_gb: float | None = Field(None, ge=0, le=1e9, description="memory it may reclaim (GB)")
    guarantee_gpus: float | None = Field(None, ge=0, le=1e9, description="GPUs it may reclaim from borrowers")
    cap_cpus: float | None = Field(None, ge=0, le=1e9, description="CPUs its jobs may hold at most")
    cap_memory_gb: float | None = Field(None, ge=0, le=1e9, description="memory its jobs may hold at most (GB)")
    cap_gpus: float | None = Field(None, ge=0, le=1e9, description="GPUs its jobs may hold at most")
    clear: bool = Field(False, description="first remove every limit (weight back to 1)")


def add_project_routes(app: FastAPI, service: "Service", who: Any) -> None:
    """`who` is the app's caller dependency (Annotated[Caller, Depends(...)])."""
    admin = service.project_admin

    @app.get("/v1/projects", summary="projects you are a member of (admin: all), with grants and quotas")
    def list_projects(caller: who) -> list[dict]:  # type: ignore[valid-type]
        return admin.list(caller)

    @app.post("/v1/projects", status_code=201, summary="create a project (admin)")
    def create_project(body: ProjectBody, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.create(caller, body.name)

    @app.get("/v1/projects/{name}", summary="one project: members, grant, quota (its members and admins)",
             responses=_REFUSED)
    def show_project(name: str, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.show(caller, name)

    @app.post("/v1/projects/{name}/members", summary="add a member or change its role (admin, project admin)")
    def add_member(name: str, body: MemberBody, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.add_member(caller, name, body.user, body.role)

    @app.delete("/v1/projects/{name}/members/{user}", summary="remove a member (admin, project admin)")
    def remove_member(name: str, user: str, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.remove_member(caller, name, user)

    @app.post("/v1/projects/{name}/grant", summary="grant a priority class above normal (admin)")
    def grant(name: str, body: GrantBody, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.grant(caller, name, body.priority)

    @app.post("/v1/projects/{name}/quota", summary="set guarantees, caps and the fair-share weight (admin)")
    def quota(name: str, body: QuotaBody, caller: who) -> dict:  # type: ignore[valid-type]
        values = body.model_dump(exclude_unset=True, exclude={"clear"})
        return admin.set_quota(caller, name, values, clear=body.clear)

    @app.get("/v1/users", summary="users, their projects and roles, and how many active tokens (admin)",
             responses=_REFUSED)
    def list_users(caller: who) -> list[dict]:  # type: ignore[valid-type]
        return admin.users(caller)
