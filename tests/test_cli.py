"""The CLI skeleton: help, version, exit codes, error rendering."""

import pytest

pytestmark = pytest.mark.nosubuid


def test_help_lists_commands_with_a_line_each(rl):
    r = rl.ok("--help")
    assert "Usage:  rootless [OPTIONS] COMMAND" in r.stdout
    assert "info       Display system-wide information" in r.stdout
    assert "version    Show the rootless version information" in r.stdout


def test_no_command_prints_usage_and_fails(rl):
    r = rl()
    assert r.returncode == 1 and "Commands:" in r.stdout


def test_version_flag_and_command(rl):
    from rootless import __version__

    assert rl.ok("--version").stdout.strip() == f"rootless version {__version__}"
    r = rl.ok("version")
    assert f"Version:        {__version__}" in r.stdout


def test_unknown_command_is_exit_125_with_hint(rl):
    r = rl("frobnicate")
    assert r.returncode == 125
    assert r.stderr.splitlines() == ["error: unknown command: frobnicate", "hint: see 'rootless --help' for the commands"]
    assert "Traceback" not in r.stderr


def test_unknown_flag_is_exit_125(rl):
    r = rl("info", "--bogus")
    assert r.returncode == 125
    assert r.stderr.startswith("error: rootless info: unrecognized arguments: --bogus")
    assert "hint: see 'rootless info --help'" in r.stderr


def test_missing_arguments_are_said_as_docker_says_them(rl):
    for args, text in ((["run"], '"rootless run" requires at least 1 argument'),
                       (["tag", "busybox"], '"rootless tag" requires exactly 2 arguments'),
                       (["pull"], '"rootless pull" requires exactly 1 argument')):
        r = rl(*args)
        assert r.returncode == 125 and f"error: {text}\n" in r.stderr and "hint: see 'rootless" in r.stderr, r


def test_unknown_global_flag(rl):
    r = rl("--bogus", "info")
    assert r.returncode == 125 and "error: unknown flag: --bogus" in r.stderr


def test_command_help_has_description(rl):
    r = rl.ok("info", "--help")
    assert "usage: rootless info" in r.stdout and "Display system-wide information" in r.stdout


def test_debug_shows_traceback_and_plain_does_not(rl, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = 1\n")
    r = rl("--config-file", str(bad), "info")
    assert r.returncode == 125 and "Traceback" not in r.stderr
    r = rl("--debug", "--config-file", str(bad), "info")
    assert r.returncode == 125 and "Traceback" in r.stderr and "error: read config file" in r.stderr


def test_invalid_log_level(rl):
    r = rl("--log-level", "loud", "info")
    assert r.returncode == 125 and "invalid --log-level `loud`" in r.stderr
