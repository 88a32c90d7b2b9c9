"""The deployments a caller may read: those of the projects its user is a member of (an admin
token: all). Another project's deployment answers 404, as a missing one does, so that its name
does not leak (`_projects.readable_projects`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from llmos.control._db import read
from llmos.control._errors import NotFound
from llmos.control._schema import deployments

if TYPE_CHECKING:
    from llmos.control._auth import Caller
    from llmos.control._service import Service

__all__ = ["deployment_project", "readable_deployments", "visible_deployments"]


def deployment_project(service: Service, name: str) -> str | None:
    """The project of deployment `name`: a running one's from memory, a stopped one's from the
    store (its owner's when written before projects); None when there is no such deployment."""
    manager = service.deployments
    if manager is not None and name in manager.controllers:
        return manager.projects.get(name) or manager.owners.get(name, "deployments")  # as its own view says
    with read(service.engine) as conn:
        row = conn.execute(select(deployments.c.project, deployments.c.owner)
                           .where(deployments.c.name == name)).first()
    return None if row is None else row.project or row.owner


def visible_deployments(service: Service, caller: Caller) -> list[dict[str, Any]]:
    """Every running deployment of the projects `caller` may read, as `llmos deploy ls` lists them."""
    if service.deployments is None:
        return []
    scope = service.readable(caller)
    return [d for d in service.deployments.list() if scope is None or d["project"] in scope]


def readable_deployments(service: Service, caller: Caller, name: str) -> Any:
    """The deployments manager, for reading deployment `name`; a 404 when there are no deployments
    here, or `name` is in a project `caller` may not read."""
    if service.deployments is None:
        raise NotFound("this control plane runs no deployments.", hint="See: llmos status")
    scope = service.readable(caller)
    if scope is not None and deployment_project(service, name) not in scope:
        raise NotFound(f"no deployment {name}.", hint="List them with: llmos deploy ls")
    return service.deployments
