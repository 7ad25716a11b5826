"""Sign-in gate and per-browser identity, applied to every HTTP request and WebSocket.

A pure ASGI middleware rather than per-route dependencies, so a route added later cannot be
left open by mistake. It puts the caller's user id in ``scope["state"]["user_id"]``.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chimp.frontend.sessions import (
    UID_COOKIE,
    SessionSigner,
    new_user_id,
    signed_in_user,
    valid_user_id,
)

# Reachable without a session: the sign-in page itself, its CSS/JS, and probes for orchestrators.
PUBLIC_PATHS = ("/login", "/ping", "/health/live", "/health/ready")
PUBLIC_PREFIXES = ("/static/",)
WS_CLOSE_UNAUTHORIZED = 4401
UID_MAX_AGE_S = 365 * 24 * 3600


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(target: str | None) -> str:
    """A post-sign-in redirect target that stays on this site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class AccessMiddleware:
    def __init__(
        self, app: ASGIApp, *, signer: SessionSigner, sign_in: bool, secure_cookies: bool
    ) -> None:
        self.app = app
        self.signer = signer
        self.sign_in = sign_in
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        state = scope.setdefault("state", {})
        if self.sign_in:
            user = signed_in_user(conn, self.signer)
            if user is None and not is_public(scope["path"]):
                await self._refuse(scope, receive, send)
                return
            state["user_id"] = user
            await self.app(scope, receive, send)
            return
        uid = conn.cookies.get(UID_COOKIE)
        if valid_user_id(uid):
            state["user_id"] = uid
            await self.app(scope, receive, send)
            return
        state["user_id"] = uid = new_user_id()
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._with_uid_cookie(send, uid))

    def _with_uid_cookie(self, send: Send, uid: str) -> Send:
        cookie = f"{UID_COOKIE}={uid}; Path=/; Max-Age={UID_MAX_AGE_S}; SameSite=Lax"
        if self.secure_cookies:
            cookie += "; Secure"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        return send_with_cookie

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "websocket":
            await receive()  # the websocket.connect message
            await send(
                {
                    "type": "websocket.close",
                    "code": WS_CLOSE_UNAUTHORIZED,
                    "reason": "sign in first",
                }
            )
            return
        if path.startswith("/api/") or path in ("/openapi.json",):
            response: JSONResponse | RedirectResponse = JSONResponse(
                {"error": "sign in first", "code": "unauthorized", "detail": None},
                status_code=401,
            )
        else:
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            root = scope.get("root_path", "")
            response = RedirectResponse(f"{root}/login?next={quote(target)}", status_code=303)
        await response(scope, receive, send)
