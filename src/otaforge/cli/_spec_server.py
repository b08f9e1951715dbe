"""The table's server-side commands: ``server``, ``fleet``, ``release``, ``channel`` and the
registered-device view (``device add|list|show``). Part of :data:`otaforge.cli._spec.COMMANDS`.
"""

from __future__ import annotations

from otaforge.cli._model import CA, CHANNEL_ARG, CONNECTION, FLEET, JSON, SERVER, Cmd, Opt

_MANAGE = "otaforge.cli.manage"
_SERVER = "otaforge.cli.server"

SERVER_COMMANDS: tuple[Cmd, ...] = (
    Cmd("device", "add", "register a device; prints its token", f"{_MANAGE}:device_add", (
        Opt("device_id", help="device id"),
        FLEET, *CONNECTION,
        Opt("--channel", default="stable", metavar="NAME", help="channel (default stable)"),
        Opt("--token-file", metavar="FILE",
            help="write the device token to this file (mode 0600) instead of printing it"),
        JSON,
    ), "Register a device; prints its device token (shown only once)."),
    Cmd("device", "list", "list devices", f"{_MANAGE}:device_list", (
        *CONNECTION,
        Opt("--fleet", metavar="NAME", help="only this fleet's devices"),
        JSON,
    ), "List devices with their running version and state."),
    Cmd("device", "show", "a device's facts, deployments and events",
        f"{_MANAGE}:device_show", (
            Opt("device_id", help="device id"), *CONNECTION, JSON,
        ), "A device's facts, deployments and recent events."),
    # --- server ----------------------------------------------------------------------------
    Cmd("server", "init", "create a server data directory", f"{_SERVER}:init", (
        Opt("--dir", required=True, metavar="DIR", help="server data directory"),
        Opt("--hostname", many=True, metavar="NAME",
            help="DNS name or IP for the certificate (repeatable; default localhost, "
                 "127.0.0.1)"),
        Opt("--database-url", metavar="URL", help="SQLAlchemy URL (default: SQLite in --dir)"),
    ), "Create a private CA, a server certificate, the database, blob store and admin "
       "token."),
    Cmd("server", "run", "serve the update server over HTTPS", f"{_SERVER}:run", (
        Opt("--dir", required=True, metavar="DIR", help="server data directory"),
        Opt("--host", default="127.0.0.1", metavar="ADDR",
            help="address to listen on (default 127.0.0.1)"),
        Opt("--port", kind="int", default=8443, lo=1, hi=65535, metavar="PORT",
            help="TCP port (default 8443)"),
        Opt("--database-url", env="OTAFORGE_DATABASE_URL", metavar="URL",
            help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: SQLite in --dir)"),
        Opt("--max-in-flight", kind="int", default=256, lo=1, metavar="N",
            help="requests served at once before 503 + Retry-After (default 256)"),
        Opt("--check-in-interval", kind="int", default=300, lo=1, metavar="SECONDS",
            help="seconds between device check-ins, a hint (+-20%; default 300)"),
        Opt("--public-url", metavar="URL",
            help="base URL written into manifests (default: the request's)"),
        Opt("--log-level", default="warning", metavar="LEVEL",
            choices=("critical", "error", "warning", "info", "debug", "trace"),
            help="critical, error, warning (default), info, debug or trace"),
    ), "Serve the update server over HTTPS with the certificate from server init."),
    Cmd("server", "wait", "wait until a server answers", f"{_SERVER}:wait", (
        SERVER, CA,
        Opt("--timeout", kind="float", default=30.0, lo=0.0, metavar="SECONDS",
            help="seconds to wait before giving up (default 30)"),
    ), "Wait until a server answers (e.g. after 'server run ... &'); exit 3 on timeout."),
    # --- fleet / release / channel ---------------------------------------------------------
    Cmd("fleet", "create", "create a fleet; prints its enrollment token",
        f"{_MANAGE}:fleet_create", (
            Opt("name", help="fleet name"),
            Opt("--chip", required=True, metavar="CHIP", help="esptool chip name, e.g. esp32s3"),
            Opt("--partitions", required=True, metavar="CSV", help="partition table CSV"),
            *CONNECTION,
            Opt("--require-signature", many=True, metavar="KEY",
                help="refuse unsigned images; trust this key (PEM, repeatable; only the "
                     "public key is sent)"),
            Opt("--secure-version-bits", kind="int", lo=1, hi=32, metavar="N",
                help="usable bits of the SECURE_VERSION eFuse (default: the chip's)"),
            JSON,
        ), "Create a fleet; prints its enrollment token (shown only once)."),
    Cmd("fleet", "list", "list fleets", f"{_MANAGE}:fleet_list", (*CONNECTION, JSON),
        "List the server's fleets."),
    Cmd("release", "publish", "upload an image as a release", f"{_MANAGE}:release_publish", (
        Opt("image", help="ESP-IDF app image (.bin)"),
        FLEET, *CONNECTION,
        Opt("--channel", metavar="NAME", help="also point this channel at the new release"),
        JSON,
    ), "Upload an image; the server refuses it, with the reason, if a check fails."),
    Cmd("release", "list", "list a fleet's releases", f"{_MANAGE}:release_list", (
        FLEET, *CONNECTION, JSON,
    ), "List a fleet's releases."),
    Cmd("release", "abort", "abort one device's deployment", f"{_MANAGE}:release_abort", (
        Opt("deployment", kind="int", lo=1, help="deployment id (see device show)"),
        *CONNECTION,
        Opt("--reason", metavar="TEXT", help="why (kept in the device's history)"),
        JSON,
    ), "Abort one device's deployment: its later reports get 409 and it is not offered "
       "again."),
    Cmd("channel", "set", "point a channel at a release", f"{_MANAGE}:channel_set", (
        CHANNEL_ARG,
        Opt("release", help="release id, version or sha256"),
        FLEET, *CONNECTION, JSON,
    ), "Point a channel of a fleet at a release."),
    Cmd("channel", "rollout", "set or show a channel's rollout limits",
        f"{_MANAGE}:channel_rollout", (
            CHANNEL_ARG, FLEET, *CONNECTION,
            Opt("--max-in-flight", kind="int", lo=1, metavar="N",
                help="at most this many devices mid-update at once"),
            Opt("--failure-threshold", kind="int", lo=0, metavar="N",
                help="pause when more deployments than this fail or roll back"),
            Opt("--percent", kind="int", lo=1, hi=100, metavar="1..100",
                help="offer the release only to this share of the channel's devices"),
            Opt("--show", kind="flag", help="only show the current settings"),
            JSON,
        ), "Set a channel's rollout limits (an option left out is lifted), or --show them."),
    Cmd("channel", "resume", "resume a paused rollout", f"{_MANAGE}:channel_resume", (
        CHANNEL_ARG, FLEET, *CONNECTION, JSON,
    ), "Resume a rollout the failure threshold paused (its failure count restarts at 0)."),
)
