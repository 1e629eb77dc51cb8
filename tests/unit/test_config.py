"""Configuration loading, environment overrides and errors naming the key (API.md §12)."""

from __future__ import annotations

import pytest

from camsvc.config import Config, ConfigError, env_overrides, load_config


def test_defaults_match_spec(tmp_path, monkeypatch):
    """With no file and no environment, the defaults are API.md §12's."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg == Config()
    assert (cfg.server.host, cfg.server.port, cfg.server.websocket_path) == ("0.0.0.0", 8002, "/ws")
    assert cfg.server.max_connections == 1000 and cfg.server.max_message_size == 1048576
    assert cfg.server.ping_interval == 30 and cfg.server.pong_wait == 60
    assert cfg.security.allowed_origins == ["*"]
    assert cfg.security.rate_limit_rps == 100 and cfg.security.rate_limit_burst == 200
    assert cfg.health.port == 8003 and cfg.camera.device_range == [0, 63]


def test_file_then_env_precedence(tmp_path):
    """Env overrides the file, which overrides the defaults."""
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: 9000\n  max_connections: 5\n")
    cfg = load_config(f, environ={"CAMERA_SERVICE_SERVER_PORT": "9100"})
    assert cfg.server.port == 9100 and cfg.server.max_connections == 5


def test_env_longest_section_and_lists():
    """Nested keys with underscores map to the right section; flow lists parse."""
    tree = env_overrides(
        {
            "CAMERA_SERVICE_RETENTION_POLICY_MAX_AGE_DAYS": "7",
            "CAMERA_SERVICE_CAMERA_DEVICE_RANGE": "[0, 9]",
            "CAMERA_SERVICE_EXTERNAL_DISCOVERY_SKYDIO_EO_PORT": "6000",
            "OTHER": "x",
        }
    )
    assert tree == {
        "retention_policy": {"max_age_days": 7},
        "camera": {"device_range": [0, 9]},
        "external_discovery": {"skydio": {"eo_port": 6000}},
    }


@pytest.mark.parametrize(
    ("value", "seconds"), [("30", 30), ("30s", 30), ("5m", 300), ("1h", 3600), ("1.5", 1.5)]
)
def test_durations(value, seconds):
    """Durations accept seconds or 30s/5m/1h."""
    cfg = load_config(environ={"CAMERA_SERVICE_SERVER_READ_TIMEOUT": value})
    assert cfg.server.read_timeout == seconds


def test_jwt_secret_sources():
    """CAMERA_SERVICE_JWT_SECRET wins over the long name, which wins over the file."""
    env = {"CAMERA_SERVICE_JWT_SECRET": "a", "CAMERA_SERVICE_SECURITY_JWT_SECRET_KEY": "b"}
    assert load_config(environ=env).security.jwt_secret_key == "a"
    assert (
        load_config(environ={"CAMERA_SERVICE_SECURITY_JWT_SECRET_KEY": "b"}).security.jwt_secret_key
        == "b"
    )


@pytest.mark.parametrize(
    ("yaml_text", "env", "key"),
    [
        ("server:\n  port: abc\n", {}, "server.port"),
        ("server:\n  port: 70000\n", {}, "server.port"),
        ("server:\n  prot: 1\n", {}, "server.prot"),
        ("sever:\n  port: 1\n", {}, "sever"),
        ("", {"CAMERA_SERVICE_SERVER_PROT": "1"}, "CAMERA_SERVICE_SERVER_PROT"),
        ("", {"CAMERA_SERVICE_SERVER_READ_TIMEOUT": "soon"}, "server.read_timeout"),
        ("snapshots:\n  quality: 0\n", {}, "snapshots.quality"),
        ("snapshots:\n  format: gif\n", {}, "snapshots.format"),
        ("storage:\n  warn_percent: 95\n", {}, "storage.warn_percent"),
        ("camera:\n  device_range: [9, 1]\n", {}, "camera.device_range"),
        ("camera:\n  device_range: [1]\n", {}, "camera.device_range"),
        ("logging:\n  level: loud\n", {}, "logging.level"),
        ("server:\n  response_metadata: 3\n", {}, "server.response_metadata"),
        ("- a\n- b\n", {}, "top level"),
        ("server: [\n", {}, "not valid YAML"),
    ],
)
def test_errors_name_the_key(tmp_path, yaml_text, env, key):
    """Every bad value or unknown key is a ConfigError whose message names the key."""
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(f, environ=env)
    assert key in str(info.value)


def test_named_missing_file_is_an_error(tmp_path):
    """A config file named explicitly must exist; the default one may be absent."""
    with pytest.raises(ConfigError, match="not found"):
        load_config(environ={"CAMSVC_CONFIG": str(tmp_path / "missing.yaml")})


def test_example_config_is_valid_and_complete():
    """camsvc.example.yaml loads, and documents every key (it equals the defaults)."""
    from pathlib import Path

    import yaml

    example = Path(__file__).resolve().parents[2] / "camsvc.example.yaml"
    cfg = load_config(example, environ={})
    assert cfg == Config(security=cfg.security)

    def keys(node, prefix=""):
        for k, v in node.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from keys(v, prefix + k + ".")

    import msgspec

    documented = set(keys(yaml.safe_load(example.read_text())))
    defaults = set(keys(msgspec.to_builtins(Config(), enc_hook=float)))
    assert defaults <= documented
