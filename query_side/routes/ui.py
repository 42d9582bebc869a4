"""The built dashboard (ui/build): static files, and index.html for every other
path so that deep links such as /vps/3 work on reload (SPA fallback)."""

from __future__ import annotations

import os
from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, file

from query_side.security_headers import CSP_HEADER, page_policy
from vpsmon.errors import NotFoundError

_CHECKOUT_BUILD = Path(__file__).resolve().parents[2] / "ui" / "build"


def ui_directory() -> Path | None:
    """VPSMON_UI_DIR, else ui/build of a source checkout; None when there is no build."""
    configured = os.environ.get("VPSMON_UI_DIR")
    directory = Path(configured) if configured else _CHECKOUT_BUILD
    return directory if (directory / "index.html").is_file() else None


def ui_blueprint(directory: Path) -> Blueprint:
    bp = Blueprint("ui")
    root = directory.resolve()

    async def page(path: Path) -> HTTPResponse:
        response = await file(path)  # Sanic marks HTML no-cache
        response.headers[CSP_HEADER] = page_policy(path)
        return response

    @bp.get("/")
    async def index(request: Request) -> HTTPResponse:
        return await page(root / "index.html")

    @bp.get("/<path:path>")
    async def asset_or_page(request: Request, path: str) -> HTTPResponse:
        if path == "api" or path.startswith("api/"):
            raise NotFoundError("API route not found")
        candidate = (root / path).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            if "/_app/immutable/" in f"/{path}":  # content-hashed names
                return await file(candidate, max_age=31_536_000)
            if candidate.suffix == ".html":
                return await page(candidate)
            return await file(candidate)
        return await page(root / "index.html")

    return bp
