"""Security headers on every response, and the Content-Security-Policy of the UI.

API responses (JSON, event streams, errors) get a policy that allows nothing:
they are data, never a document. The dashboard's HTML pages get one that
allows only this origin, plus the inline bootstrap script SvelteKit writes
into each prerendered page, by its hash (no 'unsafe-inline' for scripts).
Styles may be inline: SvelteKit's page shell carries a `style` attribute, and
an injected style cannot run code. No page may be framed (clickjacking).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

CSP_HEADER = "Content-Security-Policy"
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
}

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.DOTALL | re.I)


def ui_policy(script_hashes: tuple[str, ...]) -> str:
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def inline_script_hashes(html: str) -> tuple[str, ...]:
    return tuple(
        base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        for body in _INLINE_SCRIPT.findall(html)
    )


@functools.cache
def _page_policy(path: Path, mtime_ns: int) -> str:
    return ui_policy(inline_script_hashes(path.read_text("utf-8")))


def page_policy(path: Path) -> str:
    """The policy for one HTML file of the build (recomputed when the file changes)."""
    return _page_policy(path, path.stat().st_mtime_ns)


def add_security_headers(app: Sanic) -> None:  # type: ignore[type-arg]
    async def security_headers(request: Request, response: BaseHTTPResponse) -> None:
        for name, value in COMMON_HEADERS.items():
            response.headers[name] = value
        if CSP_HEADER not in response.headers:
            response.headers[CSP_HEADER] = API_POLICY

    app.register_middleware(security_headers, "response")
