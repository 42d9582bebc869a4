"""What every subcommand prints and raises, shared so that subcommands never import each other."""

from __future__ import annotations

import json

from vpsmon.errors import VpsmonError


class CommandError(VpsmonError):
    """A failure to report to the operator as one line, without a traceback."""


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))
