"""Swagger UI and ReDoc served from files installed with CHIMP, so ``/docs`` works offline.

FastAPI's default documentation pages load their JavaScript, CSS, favicon and fonts from
CDNs: on a machine without internet access (or behind a strict proxy) they are blank pages.
The same assets ship in the ``fastapi-offline`` wheel (Swagger UI: Apache-2.0, ReDoc: MIT);
:func:`install_api_docs` serves them under ``/docs-assets`` and points both pages there.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Route

ASSETS_PATH = "/docs-assets"
# The pages may load nothing from elsewhere: ReDoc's footer links a logo image on a CDN, and
# Swagger UI's inline start-up script and both bundles' injected styles need 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
# Swagger UI asks an online validator about the document and shows its badge unless told not to.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def assets_dir() -> Path:
    """The folder of the installed Swagger UI and ReDoc bundles."""
    return Path(str(files("fastapi_offline") / "static"))


def _is_default_docs_route(route: BaseRoute, paths: set[str]) -> bool:
    return isinstance(route, Route) and route.path in paths


def install_api_docs(app: FastAPI) -> None:
    """Replace the CDN-backed ``/docs`` and ``/redoc`` of ``app`` with self-hosted ones.

    Keeps the URLs the app was configured with (``docs_url``, ``redoc_url``); call it once in
    the app factory after the app is made.
    """
    docs_url = app.docs_url or "/docs"
    redoc_url = app.redoc_url or "/redoc"
    oauth_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    replaced = {docs_url, redoc_url, oauth_url}
    app.router.routes[:] = [r for r in app.router.routes if not _is_default_docs_route(r, replaced)]
    app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url = (
        docs_url,
        redoc_url,
        oauth_url,
    )
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_dir()), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    def self_contained(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return self_contained(
            get_swagger_ui_html(
                openapi_url=openapi_url(request),
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=f"{request.scope.get('root_path', '')}{oauth_url}",
                swagger_js_url=asset(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset(request, "swagger-ui.css"),
                swagger_favicon_url=asset(request, "favicon.png"),
                swagger_ui_parameters={
                    **(app.swagger_ui_parameters or {}),
                    **SWAGGER_UI_PARAMETERS,
                },
            )
        )

    @app.get(oauth_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return self_contained(
            get_redoc_html(
                openapi_url=openapi_url(request),
                title=f"{app.title} - ReDoc",
                redoc_js_url=asset(request, "redoc.standalone.js"),
                redoc_favicon_url=asset(request, "favicon.png"),
                with_google_fonts=False,
            )
        )
