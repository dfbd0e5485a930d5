"""The tests' own helper for device commands: which CLI commands get a stretched
``--timeout`` is read off the CLI's parser, so a new device command is covered."""

from __future__ import annotations

from waits import STEP, bound, cli_args, device_commands


def test_device_commands_are_those_with_a_port_and_a_timeout() -> None:
    found = device_commands()
    assert {"deploy", "info", "provision", "sync-clock", "update", "cross-verify"} <= found
    assert "pay" not in found  # its --timeout is an HTTP wait, and it has no --port
    assert "serve" not in found and "vdev" not in found


def test_cli_args_stretches_only_a_device_command_that_names_no_timeout() -> None:
    stretched = cli_args(("update", "--port", "p"))
    assert stretched == ("update", "--port", "p", "--timeout", f"{bound(STEP):g}")
    for args in (("update", "--port", "p", "--timeout", "3"), ("update", "--timeout=3"),
                 ("update", "--help"), ("pay", "--url", "u"), ()):
        assert cli_args(args) == args
