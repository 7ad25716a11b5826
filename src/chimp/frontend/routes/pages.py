"""HTML pages and the sign-in form."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from chimp.frontend.access import safe_next
from chimp.frontend.dependencies import (
    SettingsDep,
    password_limiter_of,
    signer_of,
    user_id_of,
)
from chimp.frontend.passwords import verify_password
from chimp.frontend.sessions import SESSION_COOKIE

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

router = APIRouter(include_in_schema=False)


def templates(request: Request) -> Jinja2Templates:
    found = request.app.state.templates
    assert isinstance(found, Jinja2Templates)
    return found


def make_templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(TEMPLATES_DIR))


def _base(request: Request) -> str:
    """Every URL in a page is relative to this, so the app works under any host, port or prefix."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def _page(
    request: Request,
    name: str,
    page: str,
    settings: SettingsDep,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    context = {
        "base": _base(request),
        "page": page,
        "user_id": user_id_of(request),
        "sign_in": settings.frontend.sign_in_enabled,
        **extra,
    }
    return templates(request).TemplateResponse(request, name, context, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
async def live_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, "live.html", "live", settings)


@router.get("/calibrate", response_class=HTMLResponse)
async def calibrate_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, "calibrate.html", "calibrate", settings)


@router.get("/training", response_class=HTMLResponse)
async def training_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, "training.html", "training", settings)


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _page(request, "models.html", "models", settings)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, settings: SettingsDep, next: str = "/") -> Response:
    if not settings.frontend.sign_in_enabled:
        return RedirectResponse(_base(request), status_code=303)
    return _page(request, "login.html", "login", settings, next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    cfg = settings.frontend
    stored = cfg.users.get(username)
    # scrypt is deliberately slow: off the event loop, so live pages keep flowing meanwhile.
    if stored is None or not await anyio.to_thread.run_sync(
        verify_password,
        password,
        stored.get_secret_value(),
        limiter=password_limiter_of(request),
    ):
        return _page(
            request,
            "login.html",
            "login",
            settings,
            status_code=401,
            next=safe_next(next),
            error="Unknown user or wrong password.",
        )
    target = _base(request).rstrip("/") + safe_next(next)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signer_of(request).sign(username),
        max_age=cfg.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=cfg.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse(_base(request) + "login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
