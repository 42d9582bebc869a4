"""How subcommands print for scripts, shared so that subcommands never import each other.

Failures are vpsmon.errors: main() prints any VpsmonError as one line.
"""

from __future__ import annotations

import json


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))
