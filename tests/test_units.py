"""rootless.units: go-units, the one size parser (RAMInBytes) and the printed sizes."""

from __future__ import annotations

import pytest

from rootless import config, limits, units


def test_parse_size_is_go_units_ram_in_bytes():
    assert units.parse_size("1024") == 1024 and units.parse_size("32m") == 32 << 20
    assert units.parse_size("32MB") == units.parse_size("32mib") == units.parse_size("32 MiB") == 32 << 20
    assert units.parse_size("10ki") == 10 << 10  # go-units: [iI]?[bB]? after the unit
    assert units.parse_size("1.5g") == 1610612736 and units.parse_size("2T") == 2 << 40
    for bad in ("lots", "", "-1", "1..5m", "1x", "m", "1  m"):
        with pytest.raises(ValueError):
            units.parse_size(bad)


def test_every_size_flag_and_key_reads_sizes_alike():
    for text in ("512k", "10ki", "1.5g", "64 MB"):
        assert config.parse_size(text) == units.parse_size(text)
        assert limits.size_flag(text, "--memory") == units.parse_size(text)
