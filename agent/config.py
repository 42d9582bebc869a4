"""Agent settings: a TOML file, overridden by ``VPSMON_AGENT_<KEY>`` variables.

Plain dataclasses and stdlib tomllib only: the agent installs without the
server's dependencies (no pydantic). Every key is optional except the token;
unknown keys and wrong types are errors, because a typo silently ignored
(e.g. ``exclude_interface``) is worse than an agent that refuses to start.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpsmon import constants
from vpsmon.errors import ConfigError

ENV_PREFIX = "VPSMON_AGENT_"
DEFAULT_CONFIG_PATH = Path("/etc/vpsmon/agent.toml")
DEFAULT_SERVER = constants.DEFAULT_GRPC_ADDRESS

# key -> kind; the kind selects the TOML type check and the env-string parser.
_SCHEMA: dict[str, str] = {
    "server": "str",
    "token": "str",
    "token_file": "path",
    "spool_dir": "path",
    "max_spool_batches": "int",
    "tls": "bool",
    "insecure": "bool",
    "ca_file": "path",
    "include_interfaces": "globs",
    "exclude_interfaces": "globs",
    "procfs_path": "path",
    "sysfs_path": "path",
    "metrics_collect_interval_seconds": "int",
    "metrics_upload_interval_seconds": "int",
    "metrics_upload_batch_max_size": "int",
}
_INT_RANGES = {
    "max_spool_batches": (1, 10_000_000),
    "metrics_collect_interval_seconds": (
        constants.COLLECT_INTERVAL_MIN_S,
        constants.COLLECT_INTERVAL_MAX_S,
    ),
    "metrics_upload_interval_seconds": (
        constants.UPLOAD_INTERVAL_MIN_S,
        constants.UPLOAD_INTERVAL_MAX_S,
    ),
    "metrics_upload_batch_max_size": (constants.BATCH_SIZE_MIN, constants.BATCH_SIZE_MAX),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def default_spool_dir(environ: Mapping[str, str] | None = None) -> Path:
    """systemd's StateDirectory, else the FHS path for root, else XDG data."""
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "spool"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/vpsmon-agent/spool")
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "vpsmon-agent" / "spool"


@dataclass(frozen=True)
class AgentSettings:
    """Everything the agent needs; collect/upload values are only initial:
    the server's AgentConfig replaces them once the handshake succeeds."""

    token: str = field(repr=False)
    server: str = DEFAULT_SERVER
    spool_dir: Path = field(default_factory=default_spool_dir)
    max_spool_batches: int = 10_000
    tls: bool = False
    # Plaintext to a non-loopback server must be asked for: the token and all
    # measurements would cross the network readable and forgeable.
    insecure: bool = False
    ca_file: Path | None = None
    include_interfaces: tuple[str, ...] = ()
    exclude_interfaces: tuple[str, ...] = ()
    procfs_path: Path = Path("/proc")
    sysfs_path: Path = Path("/sys")
    metrics_collect_interval_seconds: int = constants.DEFAULT_COLLECT_INTERVAL_S
    metrics_upload_interval_seconds: int = constants.DEFAULT_UPLOAD_INTERVAL_S
    metrics_upload_batch_max_size: int = constants.DEFAULT_BATCH_SIZE


def _check_toml(key: str, kind: str, value: Any, base: Path) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {type(value).__name__}")
        return value
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key} must be a non-empty path string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {type(value).__name__}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {type(value).__name__}")
        return value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key} must be a list of strings (glob patterns)")
    return tuple(value)


def _parse_env(key: str, kind: str, value: str) -> Any:
    name = ENV_PREFIX + key.upper()
    if kind == "str":
        return value
    if kind == "path":
        if not value:
            raise ConfigError(f"{name} must not be empty")
        return Path(value).expanduser().absolute()
    if kind == "int":
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if kind == "bool":
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(raw) - set(_SCHEMA))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_SCHEMA)}"
        )
    base = path.parent.absolute()
    try:
        return {key: _check_toml(key, _SCHEMA[key], value, base) for key, value in raw.items()}
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _check_server(server: str) -> None:
    if server.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"server must be host:port (e.g. {DEFAULT_SERVER}), got {server!r}")


def is_loopback(server: str) -> bool:
    """A unix socket, localhost or a loopback address: plaintext never leaves the host."""
    if server.startswith("unix:"):
        return True
    host = server.removeprefix("dns:").removeprefix("ipv4:").removeprefix("ipv6:")
    host = host.lstrip("/").rpartition(":")[0].strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_transport(server: str, tls: bool, values: Mapping[str, Any]) -> None:
    if not tls and not is_loopback(server) and not values.get("insecure", False):
        raise ConfigError(
            f"server {server} is not a loopback address and tls is false: set tls = true"
            " (with ca_file for a private CA), or insecure = true"
            f" ({ENV_PREFIX}INSECURE=true) to send the token and measurements in clear text"
        )


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read token_file {path}: {error.strerror}") from None
    if not token:
        raise ConfigError(f"token_file {path} is empty")
    return token


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> AgentSettings:
    """Read ``path`` (if any), apply env overrides, validate, resolve the token."""
    env = os.environ if environ is None else environ
    values = _read_file(path) if path is not None else {}
    if "token" in values and "token_file" in values:
        raise ConfigError("set either token or token_file, not both")
    overrides: dict[str, Any] = {}
    for key, kind in _SCHEMA.items():
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None:
            overrides[key] = _parse_env(key, kind, raw)
    if "token" in overrides and "token_file" in overrides:
        raise ConfigError(f"set either {ENV_PREFIX}TOKEN or {ENV_PREFIX}TOKEN_FILE, not both")
    # A token given in the environment replaces a token_file from the file, and vice versa.
    for key, other in (("token", "token_file"), ("token_file", "token")):
        if key in overrides:
            values.pop(other, None)
    values.update(overrides)

    token_file = values.pop("token_file", None)
    token = _read_token(token_file) if token_file is not None else values.pop("token", "").strip()
    values.pop("token", None)
    if not token:
        where = f"in {path} " if path is not None else ""
        raise ConfigError(
            f"no agent token: set token or token_file {where}or {ENV_PREFIX}TOKEN "
            "(`vpsmon vps add NAME` prints one)"
        )
    for key, (low, high) in _INT_RANGES.items():
        if key in values and not low <= values[key] <= high:
            raise ConfigError(f"{key} must be between {low} and {high}, got {values[key]}")
    if "server" in values:
        _check_server(values["server"])
    _check_transport(values.get("server", DEFAULT_SERVER), values.get("tls", False), values)
    if values.get("ca_file") is not None and not values.get("tls", False):
        raise ConfigError("ca_file is set but tls is false; set tls = true to use it")
    if "spool_dir" not in values:
        values["spool_dir"] = default_spool_dir(env)
    return AgentSettings(token=token, **values)
