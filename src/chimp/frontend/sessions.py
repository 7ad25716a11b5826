"""Who is on the other end: a signed session cookie and the per-browser user id.

Every browser gets its own random id (cookie ``chimp_uid``) so calibrated models and live
predictions never leak between people sharing one deployment. When sign-in is on, the id is the
signed-in user's name instead, carried by an HMAC-signed cookie ``chimp_session``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

SESSION_COOKIE = "chimp_session"
UID_COOKIE = "chimp_uid"
_UID_RE = re.compile(r"^[a-f0-9]{16,32}$")


def new_user_id() -> str:
    return secrets.token_hex(8)


def valid_user_id(value: str | None) -> bool:
    return value is not None and bool(_UID_RE.match(value))


@dataclass(frozen=True)
class SessionSigner:
    """Signs and checks ``{"u": user, "exp": unix time}`` payloads."""

    key: bytes
    max_age_s: int

    def _mac(self, payload: bytes) -> str:
        mac = hmac.new(self.key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def sign(self, user: str) -> str:
        body = json.dumps({"u": user, "exp": int(time.time()) + self.max_age_s}).encode()
        payload = base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")
        return f"{payload}.{self._mac(payload.encode())}"

    def user(self, cookie: str | None) -> str | None:
        """The user a cookie was signed for, or None if missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user, expires = str(body["u"]), int(body["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        return user if expires > time.time() else None


def signed_in_user(conn: HTTPConnection, signer: SessionSigner) -> str | None:
    return signer.user(conn.cookies.get(SESSION_COOKIE))
