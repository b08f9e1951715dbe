"""The table's server-side commands: ``server``, ``fleet``, ``release``, ``channel``, ``user``,
``audit`` and the registered-device view (``device add|list|show|revoke|retire``). Part of
:data:`otaforge.cli._spec.COMMANDS`.
"""

from __future__ import annotations

from otaforge.cli._model import CA, CHANNEL_ARG, CONNECTION, FLEET, JSON, SERVER, Cmd, Opt

_MANAGE = "otaforge.cli.manage"
_ROLLOUT = "otaforge.cli.rollout"
ROLLOUT_ID = Opt("rollout", kind="int", lo=1, help="rollout id (see rollout list)")
REASON = Opt("--reason", metavar="TEXT", help="why (kept in the rollout's decision log)")
REVERT_NOW = Opt("--revert", kind="flag",
                 help="send devices that installed the release back to the previous one")
_OPS = "otaforge.cli.ops"
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
    Cmd("device", "target", "set a device's rollout tags and hardware revision",
        f"{_ROLLOUT}:device_target", (
            Opt("device_id", help="device id"), *CONNECTION,
            Opt("--tag", many=True, metavar="TAG",
                help="replace the device's tags with these (repeatable)"),
            Opt("--clear-tags", kind="flag", help="remove every tag"),
            Opt("--hw-revision", metavar="REV", help="set its hardware revision"),
            Opt("--clear-hw-revision", kind="flag", help="forget its hardware revision"),
            JSON,
        ), "Set the tags and hardware revision rollouts target a device by (an option left "
           "out keeps that field). Devices may also report their hardware revision."),
    # --- server ----------------------------------------------------------------------------
    Cmd("server", "init", "create a server data directory", f"{_SERVER}:init", (
        Opt("--dir", required=True, metavar="DIR", help="server data directory"),
        Opt("--hostname", many=True, metavar="NAME",
            help="DNS name or IP for the certificate (repeatable; default localhost, "
                 "127.0.0.1)"),
        Opt("--ip", many=True, metavar="ADDR",
            help="IP address for the certificate (repeatable)"),
        Opt("--database-url", metavar="URL", help="SQLAlchemy URL (default: SQLite in --dir)"),
    ), "Create a private CA, a server certificate, the database, blob store and admin "
       "token. Name every host name and address devices will use (--hostname, --ip)."),
    Cmd("server", "cert", "reissue the server certificate (same CA)", f"{_SERVER}:cert", (
        Opt("action", choices=("reissue",), help="reissue"),
        Opt("--dir", required=True, metavar="DIR", help="server data directory"),
        Opt("--hostname", many=True, metavar="NAME",
            help="DNS name for the new certificate (repeatable; default: the current names)"),
        Opt("--ip", many=True, metavar="ADDR", help="IP address (repeatable)"),
        Opt("--days", kind="int", default=3650, lo=1, hi=7300, metavar="N",
            help="validity in days (default 3650)"),
    ), "Issue a new server certificate (new names or expiry) from the same CA: devices that "
       "embed server_cert.pem need no change."),
    Cmd("server", "run", "serve the update server over HTTPS", f"{_SERVER}:run", (
        Opt("--dir", required=True, metavar="DIR", help="server data directory"),
        Opt("--config", metavar="TOML",
            help="settings file (default DIR/otaforge.toml when present)"),
        Opt("--host", metavar="ADDR",
            help="address to listen on (default 127.0.0.1; 0.0.0.0: every interface)"),
        Opt("--port", kind="int", lo=1, hi=65535, metavar="PORT",
            help="TCP port (default 8443)"),
        Opt("--database-url", metavar="URL",
            help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: SQLite in --dir)"),
        Opt("--max-in-flight", kind="int", lo=1, metavar="N",
            help="requests served at once before 503 + Retry-After (default 256)"),
        Opt("--check-in-interval", kind="int", lo=1, metavar="SECONDS",
            help="seconds between device check-ins, a hint (+-20%; default 300)"),
        Opt("--public-url", metavar="URL",
            help="base URL written into manifests (default: the request's)"),
        Opt("--max-connections-per-client", kind="int", lo=1, metavar="N",
            help="connections one client address may hold open (default 64)"),
        Opt("--header-timeout", kind="float", lo=0.1, metavar="SECONDS",
            help="seconds a client has to send request headers (default 10)"),
        Opt("--body-timeout", kind="float", lo=0.1, metavar="SECONDS",
            help="seconds a client has to send a request body (default 30)"),
        Opt("--upload-timeout", kind="float", lo=0.1, metavar="SECONDS",
            help="seconds for the body of a release upload (default 300)"),
        Opt("--max-upload-bytes", kind="int", lo=1024, metavar="N",
            help="largest image a release upload may be (default 16 MiB)"),
        Opt("--max-failures", kind="int", lo=1, metavar="N",
            help="failed attempts of a release before a device stops getting it (default 3)"),
        Opt("--stale-deployment", kind="int", lo=1, metavar="SECONDS",
            help="a silent deployment frees its rollout slot after this (default 86400)"),
        Opt("--rollout-tick", kind="float", lo=0.1, metavar="SECONDS",
            help="seconds between evaluations of rollouts' gates that are due (default 5)"),
        Opt("--log-level", metavar="LEVEL",
            choices=("critical", "error", "warning", "info", "debug", "trace"),
            help="critical, error, warning (default), info, debug or trace"),
        Opt("--blob-store", env="OTAFORGE_BLOB_STORE", metavar="URL",
            help="s3://BUCKET[/PREFIX] or a directory (default DIR/blobs); S3 endpoint "
                 "from OTAFORGE_S3_ENDPOINT, credentials the AWS way"),
        Opt("--blob-redirect", kind="int", lo=0, metavar="SECONDS",
            help="S3 only: answer /firmware/ with a 307 to a presigned URL valid this long "
                 "(for clients that trust the store's certificate; default 0: proxy)"),
    ), "Serve the update server over HTTPS with the certificate from server init. Every "
       "setting also comes from OTAFORGE_<NAME> (e.g. OTAFORGE_MAX_UPLOAD_BYTES) or the "
       "config file; the command line wins."),
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
            Opt("--controller", default="rollout", choices=("rollout", "channel"),
                help="rollout: the server's rollout API gates it (default); channel: a "
                     "client-side controller of the channel's staged percentage"),
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
    # --- rollout -------------------------------------------------------------------------
    Cmd("rollout", "create", "roll a release out in health-gated waves",
        f"{_ROLLOUT}:create", (
            Opt("release", help="release id, version or sha256"),
            FLEET, *CONNECTION,
            Opt("--channel", default="stable", metavar="NAME",
                help="the channel to roll out to (default stable)"),
            Opt("--waves", default="1%,10%,50%,100%", metavar="LIST",
                help="cumulative waves: percentages or device counts "
                     "(default 1%,10%,50%,100%)"),
            Opt("--canary", many=True, metavar="DEVICE",
                help="a device of the canary wave, before the first (repeatable)"),
            Opt("--tag", many=True, metavar="TAG",
                help="only devices with this tag (repeatable: all of them)"),
            Opt("--hw-revision", many=True, metavar="REV",
                help="only devices of this hardware revision (repeatable: any)"),
            Opt("--from-version", many=True, metavar="VER",
                help="only devices running this version (repeatable: any)"),
            Opt("--soak", default="1h", metavar="TIME",
                help="a confirmed device must still check in this long after (1h)"),
            Opt("--confirm-percent", kind="float", default=90.0, lo=0.001, hi=100,
                metavar="P", help="share of a wave that must confirm and soak (90)"),
            Opt("--max-failures", default="5%", metavar="N|P%",
                help="pause when failures exceed N devices or P% of the waves (5%)"),
            Opt("--silent-after", default="15m", metavar="TIME",
                help="an updated device quiet this long is silent, a failure (15m)"),
            Opt("--stuck-timeout", default="1h", metavar="TIME",
                help="mid-update without a report this long is stuck, a failure (1h)"),
            Opt("--concurrency", kind="int", lo=1, metavar="N",
                help="at most N devices mid-update (until confirmed) at once"),
            Opt("--rate", kind="float", lo=0.001, metavar="N",
                help="at most N new devices in the first minute"),
            Opt("--rate-factor", kind="float", default=2.0, lo=1, hi=1000, metavar="F",
                help="the rate grows by F every minute the rollout runs (2)"),
            Opt("--rate-max", kind="float", lo=0.001, metavar="N",
                help="the rate never exceeds N devices a minute"),
            Opt("--penalty", kind="int", default=3, lo=1, hi=1000, metavar="N",
                help="failures of the release on a device before it is not offered (3)"),
            Opt("--eval-interval", default="30s", metavar="TIME",
                help="how often the gates are evaluated (30s)"),
            Opt("--revert", kind="flag",
                help="when the gates pause it, send its devices back to the old release"),
            Opt("--force", kind="flag",
                help="even if some devices' eFuse secure_version would refuse it"),
            JSON,
        ), "Start a rollout: the first wave opens at once; each next wave when enough of "
           "the current one confirmed and soaked; failures past the limit pause it."),
    Cmd("rollout", "show", "a rollout's waves, counts and decisions", f"{_ROLLOUT}:show", (
        ROLLOUT_ID, *CONNECTION,
        Opt("--decisions", kind="flag", help="list every decision with its numbers"),
        JSON,
    ), "A rollout's state, each wave's device counts and its latest gate decisions."),
    Cmd("rollout", "list", "list rollouts", f"{_ROLLOUT}:listing", (
        *CONNECTION,
        Opt("--fleet", metavar="NAME", help="only this fleet's rollouts"),
        Opt("--channel", metavar="NAME", help="only this channel's rollouts"),
        Opt("--state", metavar="STATE",
            choices=("running", "paused", "aborted", "completed", "superseded"),
            help="only rollouts in this state"),
        JSON,
    ), "List rollouts, newest first."),
    Cmd("rollout", "pause", "pause a rollout", f"{_ROLLOUT}:pause", (
        ROLLOUT_ID, *CONNECTION, REASON, REVERT_NOW, JSON,
    ), "Pause a rollout: no new offers; devices on the release keep it (--revert: sent "
       "back)."),
    Cmd("rollout", "resume", "resume a paused rollout", f"{_ROLLOUT}:resume", (
        ROLLOUT_ID, *CONNECTION, JSON,
    ), "Resume a paused rollout; failures so far stop counting against it."),
    Cmd("rollout", "abort", "end a rollout", f"{_ROLLOUT}:abort", (
        ROLLOUT_ID, *CONNECTION, REASON, REVERT_NOW, JSON,
    ), "End a rollout; devices not on the release stay on the channel's (--revert: all "
       "do)."),
    Cmd("rollout", "penalty-clear", "let a device be offered failed releases again",
        f"{_ROLLOUT}:penalty_clear", (
            Opt("device_id", help="device id"), *CONNECTION, JSON,
        ), "Clear a device's penalty box: releases that failed on it too often are "
           "offered again."),
    Cmd("channel", "pause", "pause a channel's rollout", f"{_OPS}:channel_pause", (
        CHANNEL_ARG, FLEET, *CONNECTION,
        Opt("--reason", metavar="TEXT", help="why (shown with the pause)"),
        JSON,
    ), "Pause a channel's rollout: no new offers until 'channel resume'."),
    Cmd("fleet", "retire", "retire a fleet (history kept)", f"{_OPS}:fleet_retire", (
        Opt("name", help="fleet name"), *CONNECTION, JSON,
    ), "Retire a fleet: its enrollment token and its devices' credentials end, its channels "
       "pause; its history stays (admin role)."),
    Cmd("release", "retire", "retire a release (history kept)", f"{_OPS}:release_retire", (
        Opt("release", help="release id, version or sha256"), FLEET, *CONNECTION, JSON,
    ), "Retire a release: it is never offered again (refused while a channel points at it)."),
    Cmd("device", "retire", "retire a registered device (history kept)",
        f"{_OPS}:device_retire", (
            Opt("device_id", help="device id"), *CONNECTION, JSON,
        ), "Retire a device: its token and download URL end; its history stays (admin role)."),
    Cmd("device", "revoke", "revoke a registered device's token", f"{_OPS}:device_revoke", (
        Opt("device_id", help="device id"), *CONNECTION, JSON,
    ), "Revoke a device's token and download URL: its next check-in is refused (401)."),
    # --- users and the audit log -----------------------------------------------------------
    Cmd("user", "add", "add a user with a role", f"{_OPS}:user_add", (
        Opt("name", help="user name"),
        Opt("--role", required=True, choices=("admin", "operator", "viewer"),
            help="admin (users, fleets), operator (publish, roll out) or viewer (read)"),
        *CONNECTION,
        Opt("--password-stdin", kind="flag",
            help="read the password from standard input (else one is generated and printed "
                 "once)"),
        JSON,
    ), "Add a user for the dashboard and the CLI; prints a generated password once unless "
       "--password-stdin."),
    Cmd("user", "list", "list users", f"{_OPS}:user_list", (*CONNECTION, JSON),
        "List users with their role and live API tokens."),
    Cmd("user", "revoke", "revoke a user", f"{_OPS}:user_revoke", (
        Opt("name", help="user name"), *CONNECTION,
        Opt("--tokens-only", kind="flag",
            help="end only the user's API tokens (the password still logs in)"),
        JSON,
    ), "Revoke a user: its API tokens and dashboard sessions stop working at once."),
    Cmd("user", "token", "issue a per-user API token", f"{_OPS}:user_token", (
        Opt("name", help="user name"), *CONNECTION,
        Opt("--label", metavar="TEXT", help="what the token is for"),
        JSON,
    ), "Issue an API token (otfu_...) for a user's CLI; printed once. Use it as --token."),
    Cmd("audit", "list", "show the audit log", f"{_OPS}:audit_list", (
        *CONNECTION,
        Opt("--limit", kind="int", default=100, lo=1, hi=1000, metavar="N",
            help="entries to show, newest first (default 100)"),
        Opt("--before", kind="int", lo=1, hi=2**31 - 1, metavar="ID",
            help="page back: entries before ID"),
        Opt("--actor", metavar="NAME", help="only this user's actions"),
        Opt("--action", metavar="NAME", help="only this action, e.g. publish"),
        JSON,
    ), "The audit log: who did what, when, from where, and the result (refusals too)."),
)
