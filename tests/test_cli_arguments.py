"""How `vpsmon` hands its arguments to the agent, which has options of its own."""

from __future__ import annotations

import logging

import pytest

from vpsmon.cli import main


@pytest.mark.parametrize("arguments", [["-v", "agent"], ["agent", "-v"], ["--verbose", "agent"]])
def test_verbose_reaches_the_agent_before_or_after_the_command(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    root.handlers.clear()
    try:
        code = main([*arguments, "--config", "/nonexistent/agent.toml"])
        debug = root.level == logging.DEBUG
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert code == 2
    assert "config file /nonexistent/agent.toml does not exist" in capsys.readouterr().err
    assert debug


def test_the_agent_rejects_options_it_does_not_know(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "--workers", "2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --workers 2" in capsys.readouterr().err
