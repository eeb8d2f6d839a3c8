"""The one door to host tools: checked exit status, errors with argv, stderr tail and hint."""

import pytest

from rootless import tools
from rootless.errors import ToolError

pytestmark = pytest.mark.nosubuid


def test_run_checks_status_and_reports_stderr():
    with pytest.raises(ToolError) as ei:
        tools.run(["sh", "-c", "echo boom >&2; exit 3"], hint="do something")
    e = ei.value
    assert "exit status 3" in e.message and "boom" in e.message and "sh -c" in e.message
    assert e.hint == "do something"


def test_run_returns_output():
    r = tools.run(["sh", "-c", "echo hi"])
    assert r.stdout == b"hi\n" and r.returncode == 0


def test_missing_tool_names_the_package():
    with pytest.raises(ToolError) as ei:
        tools.require("definitely-not-a-tool")
    assert "find host tool `definitely-not-a-tool`: not found" in ei.value.message
    tools.PACKAGES["definitely-not-a-tool"] = "some-pkg"
    try:
        with pytest.raises(ToolError) as ei:
            tools.run(["definitely-not-a-tool"])
        assert "apt-get install some-pkg" in ei.value.hint
    finally:
        del tools.PACKAGES["definitely-not-a-tool"]


def test_stdin_is_dev_null():
    # a tool that reads stdin must not hang on the caller's terminal
    r = tools.run(["cat"], timeout=5)
    assert r.stdout == b""


def test_timeout_is_an_error():
    with pytest.raises(ToolError) as ei:
        tools.run(["sleep", "5"], timeout=0.2)
    assert "no answer after 0.2 s" in ei.value.message


def test_finds_sbin_tools_off_path():
    assert tools.which("ip", path="/nonexistent") in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
