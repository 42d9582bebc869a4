"""Agent settings: TOML file, VPSMON_AGENT_* overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentSettings, default_spool_dir, load_settings
from vpsmon.errors import ConfigError

DEPLOY_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "agent.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_with_only_a_token() -> None:
    settings = load_settings(None, {"VPSMON_AGENT_TOKEN": "t0k", "HOME": "/home/x"})
    assert settings.token == "t0k"
    assert settings.server == "127.0.0.1:50051"
    assert settings.tls is False
    assert settings.ca_file is None
    assert settings.max_spool_batches == 10_000
    assert (settings.procfs_path, settings.sysfs_path) == (Path("/proc"), Path("/sys"))
    assert settings.metrics_collect_interval_seconds == 1
    assert settings.metrics_upload_interval_seconds == 1
    assert settings.metrics_upload_batch_max_size == 60
    assert settings.include_interfaces == ()
    assert settings.exclude_interfaces == ()
    assert "t0k" not in repr(settings)


def test_every_key_from_toml(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  secret-token\n")
    (tmp_path / "ca.pem").write_text("pem")
    path = write(
        tmp_path,
        """
server = "monitor.example.com:443"
token_file = "token"
spool_dir = "/var/tmp/spool"
max_spool_batches = 500
tls = true
ca_file = "ca.pem"
include_interfaces = ["eth*", "wg0"]
exclude_interfaces = ["eth9"]
procfs_path = "/host/proc"
sysfs_path = "/host/sys"
metrics_collect_interval_seconds = 5
metrics_upload_interval_seconds = 30
metrics_upload_batch_max_size = 120
""",
    )
    assert load_settings(path, {}) == AgentSettings(
        token="secret-token",
        server="monitor.example.com:443",
        spool_dir=Path("/var/tmp/spool"),
        max_spool_batches=500,
        tls=True,
        ca_file=tmp_path / "ca.pem",
        include_interfaces=("eth*", "wg0"),
        exclude_interfaces=("eth9",),
        procfs_path=Path("/host/proc"),
        sysfs_path=Path("/host/sys"),
        metrics_collect_interval_seconds=5,
        metrics_upload_interval_seconds=30,
        metrics_upload_batch_max_size=120,
    )


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    path = write(tmp_path, 'token_file = "token"\nserver = "a:1"\ntls = true\n')
    env = {
        "VPSMON_AGENT_SERVER": "[::1]:50051",
        "VPSMON_AGENT_TOKEN": "from-env",
        "VPSMON_AGENT_SPOOL_DIR": str(tmp_path / "spool"),
        "VPSMON_AGENT_TLS": "off",
        "VPSMON_AGENT_EXCLUDE_INTERFACES": "eth1, wg*,",
        "VPSMON_AGENT_METRICS_UPLOAD_BATCH_MAX_SIZE": "10",
    }
    settings = load_settings(path, env)
    assert settings.server == "[::1]:50051"
    assert settings.token == "from-env"  # replaces the file's token_file
    assert settings.spool_dir == tmp_path / "spool"
    assert settings.tls is False
    assert settings.exclude_interfaces == ("eth1", "wg*")
    assert settings.metrics_upload_batch_max_size == 10


def test_env_token_file_replaces_file_token(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("rotated\n")
    path = write(tmp_path, 'token = "old"\n')
    env = {"VPSMON_AGENT_TOKEN_FILE": str(tmp_path / "tok")}
    assert load_settings(path, env).token == "rotated"


def test_default_spool_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_spool_dir({"STATE_DIRECTORY": "/var/lib/vpsmon-agent"}) == Path(
        "/var/lib/vpsmon-agent/spool"
    )
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert default_spool_dir({}) == Path("/var/lib/vpsmon-agent/spool")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert default_spool_dir({"XDG_DATA_HOME": "/d"}) == Path("/d/vpsmon-agent/spool")
    assert default_spool_dir({}) == Path.home() / ".local/share/vpsmon-agent/spool"


def test_example_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(DEPLOY_EXAMPLE, {"VPSMON_AGENT_TOKEN": "x"})
    assert settings.server == "127.0.0.1:50051"
    text = DEPLOY_EXAMPLE.read_text()
    for key in AgentSettings.__dataclass_fields__:
        assert f"{key} =" in text or f"# {key} =" in text, key
    assert "token_file =" in text


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('token = "x"\nexclude_interface = ["a"]', {}, "unknown key(s) exclude_interface"),
        ('token = "x"\nmax_spool_batches = "10"', {}, "max_spool_batches must be an integer"),
        ('token = "x"\nmax_spool_batches = true', {}, "max_spool_batches must be an integer"),
        ('token = "x"\ntls = "yes"', {}, "tls must be true or false"),
        ('token = "x"\ninclude_interfaces = "eth0"', {}, "must be a list of strings"),
        ('token = "x"\nserver = 50051', {}, "server must be a string"),
        ('token = "x"\nserver = "localhost"', {}, "server must be host:port"),
        ('token = "x"\nserver = "h:99999"', {}, "server must be host:port"),
        ('token = "x"\nmetrics_collect_interval_seconds = 0', {}, "between 1 and"),
        ('token = "x"\nca_file = "/ca.pem"', {}, "ca_file is set but tls is false"),
        ('token = "x"\ntoken_file = "/t"', {}, "either token or token_file"),
        ('server = "h:1"', {}, "no agent token"),
        ('token = "   "', {}, "no agent token"),
        ('token_file = "missing"', {}, "cannot read token_file"),
        ("token = ", {}, "not valid TOML"),
        ('token = "x"', {"VPSMON_AGENT_MAX_SPOOL_BATCHES": "many"}, "must be an integer"),
        ('token = "x"', {"VPSMON_AGENT_TLS": "maybe"}, "VPSMON_AGENT_TLS must be true or false"),
        ("", {"VPSMON_AGENT_TOKEN": "a", "VPSMON_AGENT_TOKEN_FILE": "/b"}, "not both"),
    ],
)
def test_bad_config_is_a_clear_error(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, toml), env)
    assert message in str(raised.value)


def test_missing_file_and_empty_token_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_settings(None, {"VPSMON_AGENT_TOKEN_FILE": str(tmp_path / "empty")})
