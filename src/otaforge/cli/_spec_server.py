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
    Cmd("device", "download-url", "issue or revoke a device's download URL",
        f"{_MANAGE}:device_download_url", (
            Opt("device_id", help="device id"), *CONNECTION,
            Opt("--revoke", kind="flag", help="end the URL without issuing a new one"),
            JSON,
        ), "Issue a new header-less download URL for a device (the old one stops working), "
           "or --revoke it."),
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
        Opt("--max-connections-per-client", kind="int", default=64, lo=1, metavar="N",
            help="connections one client address may hold open (default 64)"),
        Opt("--header-timeout", kind="float", default=10.0, lo=0.1, metavar="SECONDS",
            help="seconds a client has to send request headers (default 10)"),
        Opt("--body-timeout", kind="float", default=30.0, lo=0.1, metavar="SECONDS",
            help="seconds a client has to send a request body (default 30)"),
        Opt("--upload-timeout", kind="float", default=300.0, lo=0.1, metavar="SECONDS",
            help="seconds for the body of a release upload (default 300)"),
        Opt("--log-level", default="warning", metavar="LEVEL",
            choices=("critical", "error", "warning", "info", "debug", "trace"),
            help="critical, error, warning (default), info, debug or trace"),
        Opt("--blob-store", env="OTAFORGE_BLOB_STORE", metavar="URL",
            help="s3://BUCKET[/PREFIX] or a directory (default DIR/blobs); S3 endpoint "
                 "from OTAFORGE_S3_ENDPOINT, credentials the AWS way"),
    ), "Serve the update server over HTTPS with the certificate from server init."),
    Cmd("server", "migrate-blobs", "copy firmware blobs between stores",
        "otaforge.cli.server_blobs:migrate_blobs", (
            Opt("--from", required=True, metavar="STORE",
                help="source: a directory (e.g. DATA/blobs) or s3://BUCKET[/PREFIX]"),
            Opt("--to", required=True, metavar="STORE",
                help="destination: s3://BUCKET[/PREFIX] or a directory"),
            JSON,
        ), "Copy every blob (images, delta patches) from one store to another, checking "
           "each SHA-256; blobs already there are skipped, the source is left as it is. "
           "The S3 endpoint comes from OTAFORGE_S3_ENDPOINT, credentials the AWS way."),
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
    Cmd("fleet", "simulate", "rehearse a rollout on N emulated ESP32s",
        "otaforge.cli.fleet_sim:simulate", (
            Opt("--devices", kind="int", required=True, lo=1, metavar="N",
                help="how many emulated ESP32s"),
            Opt("--partitions", required=True, metavar="CSV", help="partition table CSV"),
            Opt("--from", required=True, metavar="APP", help="the app image the fleet runs now"),
            Opt("--release", required=True, metavar="APP", help="the release to roll out"),
            Opt("--plan", metavar="TOML", help="PLAN.toml (options given here override it)"),
            Opt("--faults", metavar="SPEC",
                help="FAULTS.toml or power_cut=0.05,drop=0.1,offline=0.02"),
            Opt("--seed", kind="int", default=0, lo=0, metavar="N",
                help="random seed: the same seed gives the same run (default 0)"),
            Opt("--waves", metavar="LIST",
                help="cumulative waves, e.g. 1%,10%,50%,100% or device counts"),
            Opt("--soak", metavar="TIME",
                help="how long a device must keep checking in after confirming (1h)"),
            Opt("--max-failures", metavar="N",
                help="failures of a wave that pause it: 5% or a count"),
            Opt("--release-fails", metavar="SHARE:MODE",
                help="MODE one of self_test, hang, panic, silent (e.g. 20%:self_test); "
                     "hw=REV:MODE for one hardware revision"),
            Opt("--concurrency", kind="int", lo=1, metavar="N",
                help="devices mid-update at once (default 1% of the fleet)"),
            Opt("--check-in", metavar="TIME", help="the devices' poll interval (default 5m)"),
            Opt("--revert", kind="flag",
                help="after a pause, send the bad wave back to the old release"),
            Opt("--server", metavar="URL",
                help="rehearse against this server in real time instead"),
            Opt("--token", metavar="TOKEN", help="admin token, or @FILE"),
            Opt("--ca", metavar="PEM", help="the server's CA certificate"),
            JSON,
            Opt("--report", metavar="HTML", help="write a self-contained HTML report here"),
        ), "Rehearse a rollout: N emulated ESP32s with the real agent against a real server. "
           "Exit 1 when a device bricked or a bad release spread past where it should stop."),
    Cmd("release", "publish", "upload an image as a release", f"{_MANAGE}:release_publish", (
        Opt("image", help="ESP-IDF app image (.bin)"),
        FLEET, *CONNECTION,
        Opt("--channel", metavar="NAME", help="also point this channel at the new release"),
        Opt("--force", kind="flag",
            help="point --channel at it even if some of its devices' eFuse secure_version "
                 "would refuse it"),
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
        FLEET, *CONNECTION,
        Opt("--force", kind="flag",
            help="even if some of its devices' eFuse secure_version would refuse the release"),
        JSON,
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
