"""REST routes for a project's secrets and path roots: a thin shell over `Service.secret_admin`."""

# No `from __future__ import annotations`: FastAPI reads the routes' parameter types, and the
# caller dependency `who` is a local of `add_secret_routes`.
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from llmos.control._secret_refs import NAME

if TYPE_CHECKING:
    from llmos.control._service import Service

__all__ = ["add_secret_routes"]

# A project of `-` in a path is the caller's default project (the CLI without --project).

SecretName = Annotated[str, Path(pattern=f"^{NAME}$", description="letters, digits and _, e.g. HF_TOKEN")]
Project = Annotated[str, Path(pattern=r"^(-|[A-Za-z0-9][A-Za-z0-9_.-]{0,99})$",
                              description="a project's name, or - for your default project")]
_NOT_MEMBER = {403: {"description": "the caller is not a member of the project with the role this needs"}}


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=65536, description="the secret; stored encrypted, never shown again")


class RootBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00]+$",
                      description="an absolute folder the project's specs may name")


def add_secret_routes(app: FastAPI, service: "Service", who: Any) -> None:
    """`who` is the app's caller dependency (Annotated[Caller, Depends(...)])."""
    admin = service.secret_admin

    @app.get("/v1/projects/{project}/secrets", responses=_NOT_MEMBER,
             summary="the project's secrets: names and times, never a value (its developers)")
    def list_secrets(project: Project, caller: who) -> list[dict]:  # type: ignore[valid-type]
        return admin.list(caller, project)

    @app.put("/v1/projects/{project}/secrets/{name}", summary="set or replace a secret (its developers); "
                                                               "specs use it as ${secret:NAME} in env")
    def set_secret(project: Project, name: SecretName, body: SecretBody, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.set(caller, name, body.value, project)

    @app.delete("/v1/projects/{project}/secrets/{name}", summary="remove a secret (its developers)")
    def remove_secret(project: Project, name: SecretName, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.remove(caller, name, project)

    @app.get("/v1/projects/{project}/roots", responses=_NOT_MEMBER,
             summary="the folders the project's spec paths may be under (its members)")
    def list_roots(project: Project, caller: who) -> list[dict]:  # type: ignore[valid-type]
        return admin.roots(caller, project)

    @app.post("/v1/projects/{project}/roots", status_code=201, summary="let the project's specs name paths "
                                                                        "under a folder (admin)")
    def add_root(project: Project, body: RootBody, caller: who) -> dict:  # type: ignore[valid-type]
        return admin.add_root(caller, project, body.path)

    @app.delete("/v1/projects/{project}/roots", summary="remove an added folder (admin)")
    def remove_root(project: Project, caller: who,  # type: ignore[valid-type]
                    path: Annotated[str, Query(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")]) -> dict:
        return admin.remove_root(caller, project, path)
