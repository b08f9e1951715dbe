"""``otaforge fleet|release|channel|device``: the management API of a (remote) update server.

Every command takes ``--server``, ``--ca`` and ``--token`` (or OTAFORGE_SERVER, OTAFORGE_CA,
OTAFORGE_TOKEN). ``--token @FILE`` reads the token from a file (e.g. DATA/admin.token).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from otaforge.cli._common import EXIT_BAD_INPUT, fail, handle_errors, read_input

if TYPE_CHECKING:
    from otaforge.client.management import ManagementClient

Server = Annotated[str, typer.Option("--server", envvar="OTAFORGE_SERVER",
                                     help="Server URL, e.g. https://localhost:8443.")]
Ca = Annotated[Path | None, typer.Option("--ca", envvar="OTAFORGE_CA",
                                         help="CA certificate to pin (DATA/server_cert.pem).")]
Token = Annotated[str, typer.Option("--token", envvar="OTAFORGE_TOKEN",
                                    help="Admin token, or @FILE to read it from a file.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
FleetOpt = Annotated[str, typer.Option("--fleet", help="Fleet name.")]


def _client(server: str, ca: Path | None, token: str) -> ManagementClient:
    from otaforge.client.management import ManagementClient

    if token.startswith("@"):
        try:
            token = Path(token[1:]).read_text(encoding="utf-8").strip()
        except OSError as err:
            fail(f"--token {token}: cannot read ({err.strerror})", EXIT_BAD_INPUT)
    return ManagementClient(server, token, ca)


def _print(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines:
            typer.echo(line)


# --- fleet ---------------------------------------------------------------------------------


def fleet_create(
    name: Annotated[str, typer.Argument(help="Fleet name.")],
    chip: Annotated[str, typer.Option("--chip", help="esptool chip name, e.g. esp32s3.")],
    partitions: Annotated[Path, typer.Option("--partitions", help="Partition table CSV.")],
    server: Server, token: Token, ca: Ca = None,
    require_signature: Annotated[list[Path] | None, typer.Option(
        "--require-signature", help="Refuse unsigned images; trust this key (PEM, "
        "repeatable; only the public key is sent).")] = None,
    secure_version_bits: Annotated[int | None, typer.Option(
        "--secure-version-bits", help="Usable bits of the SECURE_VERSION eFuse "
        "(CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD; default: the chip's).")] = None,
    as_json: Json = False,
) -> None:
    """Create a fleet; prints its enrollment token (shown only once)."""
    from otaforge.crypto import keys as k

    with handle_errors():
        csv = read_input(partitions, "partition table").decode("utf-8", "replace")
        pems = [k.public_key_pem(k.load_public_key(read_input(p, "public key"))).decode()
                for p in require_signature or []]
        with _client(server, ca, token) as client:
            out = client.create_fleet(name, chip, csv, pems, bool(pems), secure_version_bits)
    _print(out, as_json, [
        f"fleet {out['name']}: {out['chip']}, OTA slot {out['ota_slot_size']} bytes, "
        f"signatures {'required' if out['require_signature'] else 'optional'}",
        f"enrollment token: {out['enrollment_token']}"])


def fleet_list(server: Server, token: Token, ca: Ca = None, as_json: Json = False) -> None:
    """List fleets."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.fleets()
    _print(out, as_json, [f"{f['name']}\t{f['chip']}\tslot={f['ota_slot_size']}\t"
                          f"channels={f['channels']}" for f in out])


def register_fleet(app: typer.Typer) -> None:
    """Add ``create`` and ``list`` to the ``fleet`` group."""
    app.command("create")(fleet_create)
    app.command("list")(fleet_list)


# --- release -------------------------------------------------------------------------------


def release_publish(
    image: Annotated[Path, typer.Argument(help="ESP-IDF app image (.bin).")],
    fleet: FleetOpt, server: Server, token: Token, ca: Ca = None,
    channel: Annotated[str | None, typer.Option(
        "--channel", help="Also point this channel at the new release.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Point --channel at it even if some of its devices' eFuse "
        "secure_version would refuse it.")] = False,
    as_json: Json = False,
) -> None:
    """Upload an image; the server refuses it, with the reason, if a check fails."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.publish(fleet, read_input(image, "image"), channel, force)
    if as_json:
        typer.echo(json.dumps({"sha256": out["sha256"], "version": out["version"]}))
        return
    typer.echo(f"release {out['id']}: {out['version']} sha256 {out['sha256']} "
               f"({out['size']} bytes){' -> ' + channel if channel else ''}")


def release_list(fleet: FleetOpt, server: Server, token: Token, ca: Ca = None,
                 as_json: Json = False) -> None:
    """List a fleet's releases."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.releases(fleet)
    _print(out, as_json, [f"{r['id']}\t{r['version']}\tsecure_version={r['secure_version']}\t"
                          f"{r['size']}\t{r['sha256']}" for r in out])


def release_abort(
    deployment: Annotated[int, typer.Argument(help="Deployment id (see device show).")],
    server: Server, token: Token, ca: Ca = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the device's "
                                               "history).")] = None,
    as_json: Json = False,
) -> None:
    """Abort one device's deployment: its later reports get 409 and it is not offered again."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.abort_deployment(deployment, reason)
    _print(out, as_json, [f"deployment {out['id']} ({out['device_id']}, release "
                          f"{out['release_id']}): {out['state']}"])


def register_release(app: typer.Typer) -> None:
    """Add ``publish``, ``list`` and ``abort`` to the ``release`` group."""
    app.command("publish")(release_publish)
    app.command("list")(release_list)
    app.command("abort")(release_abort)


# --- channel -------------------------------------------------------------------------------


def channel_set(
    channel: Annotated[str, typer.Argument(help="Channel name, e.g. stable.")],
    release: Annotated[str, typer.Argument(help="Release id, version or sha256.")],
    fleet: FleetOpt, server: Server, token: Token, ca: Ca = None, as_json: Json = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Even if some of its devices' eFuse secure_version would refuse "
        "the release.")] = False,
) -> None:
    """Point a channel of a fleet at a release."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.set_channel(fleet, channel, release, force)
    _print(out, as_json, [f"{fleet}/{out['name']} -> release {out['release_id']} "
                          f"({out['version']})"])


def _rollout_lines(fleet: str, out: dict[str, Any]) -> list[str]:
    state = f"PAUSED: {out['paused_reason']}" if out["paused"] else "running"
    limit = out["max_in_flight"] if out["max_in_flight"] is not None else "none"
    threshold = out["failure_threshold"] if out["failure_threshold"] is not None else "none"
    share = out["rollout_percent"] if out["rollout_percent"] is not None else 100
    return [f"{fleet}/{out['channel']} -> release {out['release_id']}: {state}; "
            f"{share}% of devices; max in flight {limit}; failures {out['failure_count']} "
            f"(threshold {threshold})"]


def channel_rollout(
    channel: Annotated[str, typer.Argument(help="Channel name, e.g. stable.")],
    fleet: FleetOpt, server: Server, token: Token, ca: Ca = None,
    max_in_flight: Annotated[int | None, typer.Option(
        "--max-in-flight", min=1, help="At most this many devices mid-update at once.")] = None,
    failure_threshold: Annotated[int | None, typer.Option(
        "--failure-threshold", min=0, help="Pause the rollout when more deployments than "
        "this fail or roll back.")] = None,
    percent: Annotated[int | None, typer.Option(
        "--percent", min=1, max=100, help="Offer the release only to this share of the "
        "channel's devices (stable per device; raise it to widen the rollout).")] = None,
    show: Annotated[bool, typer.Option("--show", help="Only show the current "
                                       "settings.")] = False,
    as_json: Json = False,
) -> None:
    """Set a channel's rollout limits (an option left out is lifted), or --show them."""
    with handle_errors(), _client(server, ca, token) as client:
        if show:
            out = client.rollout(fleet, channel)
        else:
            out = client.set_rollout(fleet, channel, max_in_flight, failure_threshold, percent)
    _print(out, as_json, _rollout_lines(fleet, out))


def channel_resume(
    channel: Annotated[str, typer.Argument(help="Channel name, e.g. stable.")],
    fleet: FleetOpt, server: Server, token: Token, ca: Ca = None, as_json: Json = False,
) -> None:
    """Resume a rollout the failure threshold paused (its failure count restarts at 0)."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.resume(fleet, channel)
    _print(out, as_json, _rollout_lines(fleet, out))


def register_channel(app: typer.Typer) -> None:
    """Add ``set``, ``rollout`` and ``resume`` to the ``channel`` group."""
    app.command("set")(channel_set)
    app.command("rollout")(channel_rollout)
    app.command("resume")(channel_resume)


# --- device (admin view) -------------------------------------------------------------------


def device_add(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    fleet: FleetOpt, server: Server, token: Token, ca: Ca = None,
    channel: Annotated[str, typer.Option("--channel")] = "stable", as_json: Json = False,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="Write the device token to this file (mode 0600) instead of "
        "printing it.")] = None,
) -> None:
    """Register a device; prints its device token (shown only once)."""
    from otaforge.fsutil import atomic_write_text

    with handle_errors(), _client(server, ca, token) as client:
        out = client.create_device(fleet, device_id, channel)
        if token_file is not None:
            atomic_write_text(token_file, out["token"] + "\n", mode=0o600)
    shown = (f"device token written to {token_file}" if token_file is not None
             else f"device token: {out['token']}")
    _print(out, as_json, [f"device {out['id']} in {out['fleet']}/{out['channel']}", shown,
                          f"download URL (no header needed; keep it secret): "
                          f"{out['download_url']}"])


def device_download_url(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    server: Server, token: Token, ca: Ca = None,
    revoke: Annotated[bool, typer.Option("--revoke", help="End the URL without issuing "
                                         "a new one.")] = False,
    as_json: Json = False,
) -> None:
    """Issue a new download URL for a device (the old one stops working), or --revoke it."""
    with handle_errors(), _client(server, ca, token) as client:
        if revoke:
            client.revoke_download_url(device_id)
            out: dict[str, Any] = {"device_id": device_id, "download_url": None}
        else:
            out = client.rotate_download_url(device_id)
    _print(out, as_json, [f"device {device_id}: download URL revoked" if revoke else
                          f"device {device_id}: download URL {out['download_url']}"])


def device_list(server: Server, token: Token, ca: Ca = None,
                fleet: Annotated[str | None, typer.Option("--fleet")] = None,
                as_json: Json = False) -> None:
    """List devices with their running version and state."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.devices(fleet)
    _print(out, as_json, [f"{d['id']}\t{d['fleet']}\t{d['running_version'] or '-'}\t"
                          f"{d['state']}\t{d['last_check_in'] or 'never'}" for d in out])


def device_show(device_id: Annotated[str, typer.Argument(help="Device id.")],
                server: Server, token: Token, ca: Ca = None, as_json: Json = False) -> None:
    """A device's facts, deployments and recent events."""
    with handle_errors(), _client(server, ca, token) as client:
        out = client.device(device_id)
    lines = [f"{k}: {out[k]}" for k in ("id", "fleet", "channel", "state", "running_version",
                                         "running_sha256", "running_partition",
                                         "otadata_state", "efuse_secure_version",
                                         "last_check_in")]
    lines += [f"deployment {d['id']}: release {d['release_id']} {d['state']}"
              f"{' (' + d['reason'] + ')' if d['reason'] else ''}" for d in out["deployments"]]
    lines += [f"event {e['event_id']}: {e['state']} {e['reason'] or ''}".rstrip()
              for e in out["events"]]
    _print(out, as_json, lines)


def register_device_admin(app: typer.Typer) -> None:
    """Add ``add``, ``list`` and ``show`` to the ``device`` group."""
    app.command("add")(device_add)
    app.command("list")(device_list)
    app.command("show")(device_show)
    app.command("download-url")(device_download_url)


# cli/main.py calls register_<group>: listing this module under the "device" group is enough
register_device = register_device_admin
