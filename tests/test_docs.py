"""Every user-facing command has a man page and a line in --help."""

import os
import re
import subprocess

import pytest

from rootless import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.nosubuid

def render(page):
    """The page as man shows it (overstrike bold removed); groff warnings fail the test."""
    r = subprocess.run(["man", "--warnings", "-l", "-Tutf8", page], capture_output=True, text=True,
                       env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    return re.sub(".\x08", "", r.stdout)


IMPLEMENTED = [name for name, (mod, _) in cli.COMMANDS.items() if cli._module_exists(mod)]


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_command_has_man_page_and_help_line(name):
    page = os.path.join(ROOT, "man", f"rootless-{name}.1")
    assert os.path.exists(page), f"man/rootless-{name}.1 is missing"
    assert "NAME" in render(page)
    assert name in cli.usage_text()


@pytest.mark.parametrize("page", ["rootless.1", "rootless.toml.5"])
def test_main_pages_render(page):
    assert "SEE ALSO" in render(os.path.join(ROOT, "man", page))


def test_every_config_key_is_documented():
    from rootless import config

    text = open(os.path.join(ROOT, "man", "rootless.toml.5")).read().replace("\\-", "-")
    for key in config.SCHEMA:
        assert key in text, f"{key} is not in man/rootless.toml.5"
