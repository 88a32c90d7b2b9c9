"""The Python API of a running control plane: the same operations as the CLI, over its REST API.

    from llmos.control import Client
    client = Client.local()                 # LLMOS_ADDRESS, the `llmos login`, or the daemon of LLMOS_HOME
    job = client.submit_file("job.yaml", priority="high")
    client.job(job["id"])["state"]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmos.control._errors import (
    Conflict,
    ControlError,
    Forbidden,
    NotFound,
    NotRunning,
    Rejected,
    TooLarge,
    Unauthorized,
)
from llmos.errors import SpecError

__all__ = ["Client"]

_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge, 422: Rejected}


class Client:
    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0, ca_cert: str | None = None) -> None:
        """`ca_cert`: the certificate (PEM file) an https URL is verified against; None: the system's CAs.
        Verification is never off."""
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: Any = True
        if ca_cert:
            import ssl

            try:
                verify = ssl.create_default_context(cafile=ca_cert)
            except (OSError, ssl.SSLError) as exc:
                raise ControlError(f"cannot read the CA certificate {ca_cert}: {exc}",
                                   hint="Give the control plane's certificate (PEM) with --ca-cert, or log in again "
                                        "with: llmos login URL --fingerprint SHA256") from None
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, verify=verify)

    @staticmethod
    def local(token: str | None = None) -> Client:
        """The control plane to use (llmos.control._remote): $LLMOS_ADDRESS, else the one `llmos login`
        saved, else this LLMOS_HOME's daemon. The token: `token`, $LLMOS_TOKEN, the login's, the admin token."""
        from llmos.control._lifecycle import running
        from llmos.control._paths import admin_token_file
        from llmos.control._remote import load_login, pick

        address = os.environ.get("LLMOS_ADDRESS")
        info = None if address else running()
        admin = admin_token_file() if info is not None else None
        target = pick(address, token or os.environ.get("LLMOS_TOKEN"), os.environ.get("LLMOS_CA_CERT"),
                      load_login(), info, admin.read_text().strip() if admin and admin.is_file() else None)
        if target is None:
            raise NotRunning("no control plane is running for this LLMOS_HOME, and none is set to use.",
                             hint="Start one with: llmos up   (or use a remote one: llmos login URL, or --address URL)")
        return Client(target.url, target.token, ca_cert=target.ca_cert)

    @staticmethod
    def to(address: str, token: str | None = None, timeout_s: float = 30.0) -> Client:
        """The control plane at `address`, trusting $LLMOS_CA_CERT or the certificate `llmos login`
        pinned for it; the token: `token`, $LLMOS_TOKEN, the login's."""
        from llmos.control._remote import load_login, pick

        target = pick(address, token or os.environ.get("LLMOS_TOKEN"), os.environ.get("LLMOS_CA_CERT"), load_login(),
                      None, None)
        assert target is not None  # an address always gives one
        return Client(target.url, target.token, timeout_s=timeout_s, ca_cert=target.ca_cert)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # ---- jobs ----------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any], overrides: list[str] | None = None, priority: str = "normal",
               project: str | None = None, max_retries: int | None = None) -> dict:
        return self._call("POST", "/v1/jobs", json={"spec": spec, "overrides": overrides or [], "priority": priority,
                                                    "project": project, "max_retries": max_retries})

    def submit_file(self, path: str | Path, overrides: list[str] | None = None, **options: Any) -> dict:
        """Validate `path` here (paths resolve against its folder), then submit the resolved spec."""
        from llmos.control._submit import load_submission, spec_project

        job = load_submission(Path(path), overrides)
        options["project"] = options.get("project") or spec_project(Path(path))  # --project wins over `project:`
        return self.submit(job.model_dump(mode="json", by_alias=True), **options)

    def jobs(self, state: str | None = None, owner: str | None = None, limit: int = 100,
             before: int | None = None) -> list[dict]:
        params = {k: v for k, v in {"state": state, "owner": owner, "limit": limit, "before": before}.items()
                  if v is not None}
        return self._call("GET", "/v1/jobs", params=params)

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: int) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def log_files(self, job_id: int) -> list[dict]:
        return self._call("GET", f"/v1/jobs/{job_id}/logs")

    def read_log(self, job_id: int, name: str, offset: int = 0) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}/logs/{name}", params={"offset": offset})

    # ---- the rest ------------------------------------------------------------------------------
    def status(self) -> dict:
        return self._call("GET", "/v1/status")

    def top(self) -> dict:
        return self._call("GET", "/v1/top")

    def create_token(self, role: str, name: str, owner: str | None = None) -> dict:
        return self._call("POST", "/v1/tokens", json={"role": role, "name": name, "owner": owner})

    def tokens(self, include_revoked: bool = False) -> list[dict]:
        """id, name, owner, role, prefix, created_s, last_used_s, revoked_s of each token (admin)."""
        return self._call("GET", "/v1/tokens", params={"all": include_revoked})

    def revoke_token(self, token_id: int) -> dict:
        return self._call("POST", f"/v1/tokens/{token_id}/revoke")

    def audit(self, limit: int = 100, since: float | None = None, actor: str | None = None,
              action: str | None = None) -> list[dict]:
        """Audit rows, newest first (admin): at or after `since` (epoch seconds), by `actor`, of `action`
        (`tokens.*` matches by prefix)."""
        params = {k: v for k, v in {"limit": limit, "since": since, "actor": actor, "action": action}.items()
                  if v is not None}
        return self._call("GET", "/v1/audit", params=params)

    def audit_verify(self) -> dict:
        """Check the audit log's hash chain: {ok, rows, chained, first_bad, problem} (admin)."""
        return self._call("GET", "/v1/audit/verify")

    def deploy(self, spec: dict[str, Any], overrides: list[str] | None = None) -> dict:
        return self._call("POST", "/v1/deployments", json={"spec": spec, "overrides": overrides or []})

    def deployments(self) -> list[dict]:
        return self._call("GET", "/v1/deployments")

    def deployment(self, name: str) -> dict:
        return self._call("GET", f"/v1/deployments/{name}")

    def deployment_log_files(self, name: str) -> list[dict]:
        return self._call("GET", f"/v1/deployments/{name}/logs")

    def read_deployment_log(self, name: str, file: str, offset: int = 0) -> dict:
        return self._call("GET", f"/v1/deployments/{name}/logs/{file}", params={"offset": offset})

    def undeploy(self, name: str) -> dict:
        return self._call("DELETE", f"/v1/deployments/{name}")

    def canary(self, name: str, action: str) -> dict:
        """`promote` or `rollback` the deployment's running canary."""
        return self._call("POST", f"/v1/deployments/{name}/{action}")

    # ---- projects and users -------------------------------------------------------------------------
    def projects(self) -> list[dict]:
        return self._call("GET", "/v1/projects")

    def project(self, name: str) -> dict:
        return self._call("GET", f"/v1/projects/{name}")

    def create_project(self, name: str) -> dict:
        return self._call("POST", "/v1/projects", json={"name": name})

    def add_member(self, project: str, user: str, role: str) -> dict:
        return self._call("POST", f"/v1/projects/{project}/members", json={"user": user, "role": role})

    def remove_member(self, project: str, user: str) -> dict:
        return self._call("DELETE", f"/v1/projects/{project}/members/{user}")

    def grant(self, project: str, priority: str) -> dict:
        return self._call("POST", f"/v1/projects/{project}/grant", json={"priority": priority})

    def set_quota(self, project: str, clear: bool = False, **values: float | None) -> dict:
        """Only the limits given change (None removes one); `clear` first removes them all."""
        return self._call("POST", f"/v1/projects/{project}/quota", json={**values, "clear": clear})

    def users(self) -> list[dict]:
        return self._call("GET", "/v1/users")

    # ---- secrets and path roots ---------------------------------------------------------------------
    def secrets(self, project: str) -> list[dict]:
        return self._call("GET", f"/v1/projects/{project}/secrets")

    def set_secret(self, project: str, name: str, value: str) -> dict:
        return self._call("PUT", f"/v1/projects/{project}/secrets/{name}", json={"value": value})

    def remove_secret(self, project: str, name: str) -> dict:
        return self._call("DELETE", f"/v1/projects/{project}/secrets/{name}")

    def roots(self, project: str) -> list[dict]:
        return self._call("GET", f"/v1/projects/{project}/roots")

    def add_root(self, project: str, path: str) -> dict:
        return self._call("POST", f"/v1/projects/{project}/roots", json={"path": path})

    def remove_root(self, project: str, path: str) -> dict:
        return self._call("DELETE", f"/v1/projects/{project}/roots", params={"path": path})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ControlError(f"the certificate of {self.url} is not trusted ({exc}).",
                                   hint="Give its certificate with --ca-cert FILE, or pin the fingerprint that "
                                        "llmos up printed: llmos login URL --fingerprint SHA256") from None
            raise NotRunning(f"the control plane at {self.url} does not answer ({exc}).",
                             hint="Check it with: llmos status  (start it with: llmos up)") from None
        except httpx.TransportError as exc:
            raise NotRunning(f"the control plane at {self.url} does not answer ({exc}).",
                             hint="Check it with: llmos status  (start it with: llmos up)") from None
        if response.status_code < 400:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text}
        message, hint = body.get("error") or str(body.get("detail", body)), body.get("hint")
        problems = [(p["path"], p["message"]) for p in body.get("problems") or []]
        if problems and response.status_code == 422:
            raise SpecError(message, problems=problems, hint=hint)
        raise _BY_STATUS.get(response.status_code, ControlError)(message, hint=hint, problems=problems)
