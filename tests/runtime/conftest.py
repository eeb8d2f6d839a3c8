"""Fixtures of the runtime tests."""

from __future__ import annotations

import pytest
import rtbundle


@pytest.fixture
def bundle(tmp_path) -> str:
    """A bundle of its own (tests may write to its rootfs); config.json is written by the test."""
    b = tmp_path / "bundle"
    b.mkdir()
    rtbundle.make_rootfs(str(b / "rootfs"))
    return str(b)
