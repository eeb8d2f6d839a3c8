"""daemon.toml: keys mirror daemon.json; errors name the key and the file."""

import json
import os

import pytest

from rootless import config
from rootless.errors import ConfigError

pytestmark = pytest.mark.nosubuid


def load_text(tmp_path, text, env=None):
    p = tmp_path / "daemon.toml"
    p.write_text(text)
    e = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    e.update(env or {})
    return config.load(str(p), env=e), str(p)


def test_defaults_without_a_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    c = config.load(env={"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(run)})
    assert c.source is None
    assert c.data_root == str(tmp_path / ".local/share/rootless")
    assert c.exec_root == str(run / "rootless")
    assert c.log_driver == "json-file" and c.max_concurrent_downloads == 3 and c.max_download_attempts == 5
    assert c.insecure_registries == ["127.0.0.0/8"]


def test_every_daemon_json_key_is_accepted(tmp_path):
    text = """
data-root = "~/d"
exec-root = "/tmp/e"
storage-driver = "vfs"
storage-opts = ["a=b"]
log-driver = "local"
log-level = "warn"
debug = false
registry-mirrors = ["https://mirror.example"]
insecure-registries = ["10.0.0.0/8", "myreg:5000"]
max-concurrent-downloads = 6
max-concurrent-uploads = 2
max-download-attempts = 2
dns = ["1.1.1.1"]
dns-search = ["example.com"]
dns-opts = ["ndots:2"]
bip = "172.30.0.1/16"
default-runtime = "crun"
default-shm-size = "128M"
no-new-privileges = true
init = true
userland-proxy = false
hosts = ["unix:///tmp/x.sock"]
labels = ["a=b"]
[log-opts]
max-size = "10m"
max-file = "3"
compress = "true"
[features]
buildkit = false
[default-ulimits.nofile]
Name = "nofile"
Soft = 1024
Hard = 2048
[runtimes.crun]
path = "/usr/bin/crun"
runtimeArgs = ["--debug"]
"""
    c, _ = load_text(tmp_path, text)
    assert c.data_root == str(tmp_path / "d")
    assert c.storage_driver == "vfs" and c.log_opts["max-file"] == "3"
    assert c.default_ulimits["nofile"]["Hard"] == 2048
    assert c.runtimes["crun"]["runtimeArgs"] == ["--debug"]
    assert c.insecure_registries == ["127.0.0.0/8", "10.0.0.0/8", "myreg:5000"]
    assert c.no_new_privileges and c.init and not c.userland_proxy


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("foo = 1", "unknown key `foo`"),
        ("data-rot = 'x'", "unknown key `data-rot`"),
        ("debug = 'yes'", "key `debug`: expected true or false, got a string"),
        ("max-concurrent-downloads = 0", "key `max-concurrent-downloads`: expected a positive integer"),
        ("storage-driver = 'zfs'", "key `storage-driver`: `zfs` is not one of"),
        ("dns = '1.1.1.1'", "key `dns`: expected a list of strings"),
        ("default-shm-size = 'huge'", "key `default-shm-size`: `huge` is not a size"),
        ("[log-opts]\nmax-size = 'big'", "log-opts `max-size`"),
        ("[runtimes.x]\npth = 'a'", "runtime `x`"),
        ("data-root = [", "invalid TOML"),
    ],
)
def test_bad_files_name_key_and_file(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, text)
    assert fragment in ei.value.message
    assert str(tmp_path / "daemon.toml") in ei.value.message
    assert ei.value.hint


def test_typo_gets_a_suggestion(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, "data-rot = 'x'")
    assert "did you mean `data-root`?" in ei.value.hint


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as ei:
        config.load(str(tmp_path / "nope.toml"), env={"HOME": str(tmp_path)})
    assert "no such file" in ei.value.message


def test_env_var_overrides_default_location(tmp_path):
    p = tmp_path / "other.toml"
    p.write_text('log-level = "error"\n')
    c = config.load(env={"HOME": str(tmp_path), "ROOTLESS_CONFIG": str(p)})
    assert c.source == str(p) and c.log_level == "error"


def test_import_roundtrip(tmp_path):
    dj = {
        "data-root": "/srv/x",
        "log-opts": {"max-size": "10m"},
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1, "Hard": 2}},
        "registry-mirrors": ["https://m"],
        "features": {"buildkit": True},
        "labels": ["quote=\"x\""],
    }
    text = config.import_daemon_json(json.dumps(dj), "daemon.json")
    p = tmp_path / "daemon.toml"
    p.write_text(text)
    c = config.load(str(p), env={"HOME": str(tmp_path)})
    assert c.data_root == "/srv/x" and c.log_opts == {"max-size": "10m"}
    assert c.default_ulimits["nofile"]["Soft"] == 1 and c.features == {"buildkit": True}
    assert c.labels == ['quote="x"']


def test_import_rejects_unknown_keys():
    with pytest.raises(ConfigError) as ei:
        config.import_daemon_json('{"iptables": false}', "daemon.json")
    assert "unknown key `iptables`" in ei.value.message


def test_cli_config_import_validate_show(rl, tmp_path):
    dj = tmp_path / "daemon.json"
    dj.write_text(json.dumps({"log-level": "warn", "dns": ["9.9.9.9"]}))
    r = rl.ok("config", "import", str(dj), "--write")
    path = os.path.join(rl.env["XDG_CONFIG_HOME"], "rootless", "daemon.toml")
    assert os.path.exists(path) and "wrote" in r.stderr
    assert rl.ok("config", "validate").stdout.startswith(f"configuration OK: {path}")
    shown = rl.ok("config", "show").stdout
    assert 'log-level = "warn"' in shown and 'dns = ["9.9.9.9"]' in shown
    r = rl("config", "import", str(dj), "--write")
    assert r.returncode == 125 and "add --force" in r.stderr


def test_cli_validate_bad_file(rl, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("log-level = 3\n")
    r = rl("config", "validate", str(bad))
    assert r.returncode == 125
    assert f"error: read config file `{bad}`: key `log-level`: expected a string, got an integer" in r.stderr
    assert "hint:" in r.stderr


def test_parse_size():
    assert config.parse_size("64m") == 64 << 20
    assert config.parse_size("1g") == 1 << 30
    assert config.parse_size("512") == 512
    with pytest.raises(ValueError):
        config.parse_size("lots")
