"""``server run``'s settings from a TOML file, ``OTAFORGE_*`` environment variables and the
command line (pydantic-settings), highest first: command line, environment, config file,
defaults. The file is ``--config FILE`` or, when present, ``DATA/otaforge.toml``; its keys are
the field names below (an unknown key is an error, not silently ignored)::

    host = "0.0.0.0"          # listen on every interface (default 127.0.0.1)
    port = 8443
    max_upload_bytes = 33554432
    max_failures = 3          # failed attempts of a release before a device stops getting it
    stale_deployment_s = 86400
    access_log = true         # one JSON line per request on stderr

Environment: ``OTAFORGE_MAX_UPLOAD_BYTES=33554432``, ``OTAFORGE_HOST=0.0.0.0``, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from otaforge.errors import InputError
from otaforge.server.settings import Settings

CONFIG_NAME = "otaforge.toml"


class ServerConfig(BaseSettings):
    """Every knob of a running server (see :class:`~otaforge.server.settings.Settings`)."""

    model_config = SettingsConfigDict(env_prefix="OTAFORGE_", extra="forbid",
                                      case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(8443, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "warning"
    database_url: str | None = None
    public_url: str | None = None
    max_in_flight: int = Field(256, ge=1)
    retry_after_s: int = Field(5, ge=1)
    check_in_interval_s: int = Field(300, ge=1)
    check_in_jitter: float = Field(0.2, ge=0, le=1)
    max_failures: int = Field(3, ge=1)
    max_upload_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_reports_per_minute: int = Field(120, ge=1)
    chunk_size: int = Field(256 * 1024, ge=4096)
    stale_deployment_s: int = Field(86_400, ge=1)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    upload_timeout_s: float = Field(300.0, gt=0)
    max_connections_per_client: int = Field(64, ge=1)
    delta_workers: int = Field(1, ge=1)
    delta_max_ratio: float = Field(0.5, gt=0, le=1)
    session_ttl_s: int = Field(12 * 3600, ge=60)
    access_log: bool = True
    cookie_secure: bool = True
    rollout_tick_s: float = Field(5.0, gt=0)
    rollout_eval_on_check_in: bool = True
    blob_store: str | None = None
    blob_redirect_s: int = Field(0, ge=0)

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def to_settings(self, data_dir: Path) -> Settings:
        """The :class:`Settings` a server of ``data_dir`` runs with."""
        fields = self.model_dump(exclude={"host", "port", "log_level"})
        return Settings(data_dir=data_dir, **fields)


def load_config(data_dir: Path, config_file: Path | None = None,
                **overrides: Any) -> ServerConfig:
    """The configuration for ``data_dir``: ``overrides`` (command-line values; None means
    not given) over ``OTAFORGE_*`` over the TOML file over the defaults.

    Raises:
        InputError: the file is missing or malformed, or a value is out of range.
    """
    path = config_file if config_file is not None else data_dir / CONFIG_NAME
    if config_file is not None and not config_file.is_file():
        raise InputError(f"--config {config_file}: no such file")

    class _FromFile(ServerConfig):
        model_config = SettingsConfigDict(**{**ServerConfig.model_config,
                                             "toml_file": path if path.is_file() else None})

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return _FromFile(**given)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "config"
        raise InputError(f"server setting {where!r}: {first.get('msg', 'invalid')} (from "
                         f"the command line, OTAFORGE_{where.upper()} or {path})") from None
    except ValueError as err:  # malformed TOML
        raise InputError(f"{path}: not a valid TOML file ({err})") from None
