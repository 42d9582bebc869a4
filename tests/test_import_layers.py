"""The layers contract in pyproject.toml names every module, so none escapes it.

import-linter checks only the modules a contract names: a new module directly
under vpsmon/ that no layer lists could import anything. `exhaustive = true`
needs a common container, which these six root packages do not have, so this
test is that check.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict[str, object]:
    config: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]
    return config


def _layered_modules() -> set[str]:
    contracts = _config()["contracts"]
    assert isinstance(contracts, list)
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return {
        name.strip().strip("()") for layer in layers for name in layer.replace(":", "|").split("|")
    }


def test_every_module_of_vpsmon_and_every_root_package_is_in_a_layer() -> None:
    layered = _layered_modules()
    roots = _config()["root_packages"]
    assert isinstance(roots, list)
    expected = {f"vpsmon.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "vpsmon")])}
    expected |= {root for root in roots if root != "vpsmon"}
    assert sorted(expected - layered) == []
    assert sorted(layered - expected) == []
