"""The query side serves the built dashboard, with deep links falling back to index.html."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.query_side import query_side, seed


async def test_built_ui_is_served_with_spa_fallback(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    build = tmp_path / "build"
    (build / "_app" / "immutable").mkdir(parents=True)
    (build / "index.html").write_text("<!doctype html><title>vpsmon</title>")
    (build / "_app" / "immutable" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside the build")
    dsn = embedded_migrated_database
    await seed(dsn)
    async with (
        query_side(
            dsn, tmp_path / "qs.log", workers=1, env={"VPSMON_UI_DIR": str(build)}
        ) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        for page in ("/", "/vps/3", "/login"):
            response = await client.get(page)
            assert response.status_code == 200
            assert "<title>vpsmon</title>" in response.text
            assert response.headers["cache-control"] == "no-cache"
        asset = await client.get("/_app/immutable/app.js")
        assert asset.text == "console.log(1)"
        assert "max-age=31536000" in asset.headers["cache-control"]
        api = await client.get("/api/nope")
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "not_found"
        escape = await client.get("/..%2Fsecret.txt")
        assert "outside the build" not in escape.text
