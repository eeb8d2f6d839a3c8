"""The cgroup v2 VM tests: skipped on the host (with the reason), run inside the VM by run-vm.sh.

Every test in this directory gets the `cgroupvm` marker. guest.sh sets ROOTLESS_CGROUPVM=1 after it
has delegated a cgroup v2 subtree to the test user; anywhere else the tests are skipped.
"""

from __future__ import annotations

import os

import pytest

IN_VM = os.environ.get("ROOTLESS_CGROUPVM") == "1"
SKIP_REASON = ("cgroup v2 VM test: runs inside the VM booted by tests/cgroupvm/run-vm.sh "
               "(tests/run does it), not on this host")


def pytest_configure(config):
    config.addinivalue_line("markers", "cgroupvm: runs inside the cgroup v2 VM (tests/cgroupvm/run-vm.sh)")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.cgroupvm)
            if not IN_VM:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
