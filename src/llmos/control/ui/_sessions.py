"""The dashboard's sessions: a random id in an HttpOnly, SameSite=Strict cookie, the rest on the server.

The cookie holds only a random session id; the token it was opened with stays in this process's
memory, so a stolen cookie jar never yields a token that works on the API. Every request checks the
token again (a revoked token closes its sessions at once); each session has its own CSRF token,
which every form sends back. Sessions live in memory: a restarted daemon asks everyone to log in again.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

__all__ = ["COOKIE", "LOGIN_COOKIE", "Session", "SessionStore", "cookie_attributes", "same_token"]

COOKIE = "llmos_session"
LOGIN_COOKIE = "llmos_login"  # the login form's own CSRF value (there is no session yet)
IDLE_S = 8 * 3600.0  # a session unused this long is closed
MAX_SESSIONS = 10_000  # a flood of logins cannot grow memory without bound: the oldest go first


@dataclass
class Session:
    id: str
    token: str = field(repr=False)
    owner: str
    role: str
    csrf: str = field(repr=False)
    last_seen_s: float


def cookie_attributes(secure: bool, max_age_s: int | None = None) -> dict[str, object]:
    """What `Response.set_cookie` gets: never readable by scripts, never sent cross-site, Secure under TLS."""
    return {"httponly": True, "samesite": "strict", "secure": secure, "path": "/ui",
            **({"max_age": max_age_s} if max_age_s is not None else {})}


def same_token(expected: str, given: str | None) -> bool:
    """A constant-time comparison of CSRF values; a missing or empty one never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


class SessionStore:
    def __init__(self, idle_s: float = IDLE_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str, owner: str, role: str, now_s: float | None = None) -> Session:
        now = time.time() if now_s is None else now_s
        session = Session(secrets.token_urlsafe(32), token, owner, role, secrets.token_urlsafe(32), now)
        with self._lock:
            while len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen_s)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, now_s: float | None = None) -> Session | None:
        """The live session of this id, its idle clock restarted; None when unknown or expired."""
        if not session_id:
            return None
        now = time.time() if now_s is None else now_s
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen_s > self.idle_s:
                del self._sessions[session_id]
                return None
            session.last_seen_s = now
            return session

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)
