"""The residents' privacy centre: one page served by the gateway, at /privacy.

Plain HTML and a little JavaScript (gateway/static/privacy/) that talks to /graphql with the
resident's bearer token, as any client would: the page holds no privilege of its own and reads
nothing the control plane would not answer. A strict Content-Security-Policy lets it run only
its own script and reach only this origin; everything it shows is set as text, never as markup
(a client's name or a purpose is the operator's, a field coordinate may be a partner's).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

PAGE_PATH = "/privacy"
ASSETS = Path(__file__).parent / "static" / "privacy"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class _Assets(StaticFiles):
    """The page's script and style, with the page's security headers."""

    async def get_response(self, path: str, scope):
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def privacy_centre_routes() -> list[Route | Mount]:
    page = (ASSETS / "index.html").read_text()

    async def privacy_centre(_request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers={**SECURITY_HEADERS, "cache-control": "no-cache"})

    return [
        Route(PAGE_PATH, privacy_centre, methods=["GET"]),
        Mount(f"{PAGE_PATH}/assets", app=_Assets(directory=str(ASSETS)), name="privacy-assets"),
    ]
