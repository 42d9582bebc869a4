"""The `vpsmon` command: the top layer, which calls the sides' public functions."""

from vpsmon.cli.main import main

__all__ = ["main"]
