"""The dashboard's copy of the server's rules is exactly what the generator writes.

ui/src/lib/generated/constants.ts is checked in so that the UI builds without
Python; this drift test fails as soon as a rule changes without regenerating it
(`python -m vpsmon.ui_constants`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vpsmon import constants
from vpsmon import ui_constants as ui_constants_module
from vpsmon.ui_constants import TARGET, render, ui_constants

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_file_is_what_the_generator_writes() -> None:
    assert TARGET.read_text() == render(), "run: python -m vpsmon.ui_constants"


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "generated" / "constants.ts"
    monkeypatch.setattr(ui_constants_module, "GENERATED", target.parent)
    monkeypatch.setattr(ui_constants_module, "TARGET", target)
    assert ui_constants_module.main(["--check"]) == 1  # missing
    assert ui_constants_module.main([]) == 0
    assert target.read_text() == render()
    assert ui_constants_module.main(["--check"]) == 0
    target.write_text(render().replace("64", "65"))
    assert ui_constants_module.main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err


def test_the_command_line_refuses_unknown_arguments() -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "vpsmon.ui_constants", "--bogus"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2
    assert "usage" in usage.stderr


def test_the_ui_pattern_is_the_server_rule() -> None:
    values = ui_constants()
    pattern = re.compile(str(values["USERNAME_PATTERN"]))
    assert pattern.match("a" * constants.USERNAME_MAX_CHARS)
    assert not pattern.match("a" * (constants.USERNAME_MAX_CHARS + 1))
    assert not pattern.match("with space")


def test_ui_sources_do_not_retype_the_generated_rules() -> None:
    """Outside generated/ (and tests), no UI source spells a generated value itself."""
    sources = [
        path
        for path in (ROOT / "ui" / "src").rglob("*")
        if path.suffix in {".ts", ".svelte"}
        and "generated" not in path.parts
        and ".test." not in path.name
        and "test" not in path.relative_to(ROOT / "ui" / "src").parts
    ]
    assert sources
    retyped = {
        "username pattern": constants.USERNAME_CHARACTERS,
        "metric list": "'cpu_usage_percent',",
        "duration units": "w: 604800",
    }
    for path in sources:
        text = path.read_text()
        for what, literal in retyped.items():
            assert literal not in text, f"{path} retypes the {what}"
