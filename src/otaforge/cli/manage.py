"""``otaforge fleet|release|channel|device``: the management API of a (remote) update server.

Every command takes ``--server``, ``--ca`` and ``--token`` (or OTAFORGE_SERVER, OTAFORGE_CA,
OTAFORGE_TOKEN). ``--token @FILE`` reads the token from a file (e.g. DATA/admin.token).
Lists print aligned tables (``--json``: the server's JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from otaforge.cli._common import read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.client.management import ManagementClient


def _client(args: argparse.Namespace) -> ManagementClient:
    from pathlib import Path

    from otaforge.client.management import ManagementClient

    token: str = args.token
    if token.startswith("@"):
        try:
            with open(token[1:], encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as err:
            raise InputError(f"--token {token}: cannot read ({err.strerror})") from None
    return ManagementClient(args.server, token, Path(args.ca) if args.ca else None)


def _print(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write("".join(f"{line}\n" for line in lines))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Aligned columns with a header and a rule (``(none)`` for no rows)."""
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines if rows else [*lines, "(none)"]


# --- fleet ---------------------------------------------------------------------------------


def fleet_create(args: argparse.Namespace) -> int:
    """``fleet create NAME --chip C --partitions CSV``: prints the enrollment token."""
    from otaforge.crypto import keys as k

    csv = read_input(args.partitions, "partition table").decode("utf-8", "replace")
    pems = [k.public_key_pem(k.load_public_key(read_input(p, "public key"))).decode()
            for p in args.require_signature]
    with _client(args) as client:
        out = client.create_fleet(args.name, args.chip, csv, pems, bool(pems),
                                  args.secure_version_bits)
    _print(out, args.json, [
        f"fleet {out['name']}: {out['chip']}, OTA slot {out['ota_slot_size']} bytes, "
        f"signatures {'required' if out['require_signature'] else 'optional'}",
        f"enrollment token: {out['enrollment_token']}"])
    return 0


def _channels(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{name}->{'-' if rel is None else rel}"
                         for name, rel in sorted(value.items())) or "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def fleet_list(args: argparse.Namespace) -> int:
    """``fleet list``: one row per fleet."""
    with _client(args) as client:
        out = client.fleets()
    _print(out, args.json, table(
        ("NAME", "CHIP", "OTA SLOT", "SIGNATURES", "CHANNELS"),
        [(f["name"], f["chip"], f["ota_slot_size"],
          "required" if f.get("require_signature") else "optional",
          _channels(f.get("channels"))) for f in out]))
    return 0


# --- release -------------------------------------------------------------------------------


def release_publish(args: argparse.Namespace) -> int:
    """``release publish IMAGE --fleet F [--channel C]``."""
    with _client(args) as client:
        out = client.publish(args.fleet, read_input(args.image, "image"), args.channel,
                             args.force)
    if args.json:
        sys.stdout.write(json.dumps({"id": out["id"], "sha256": out["sha256"],
                                     "version": out["version"]}) + "\n")
        return 0
    channel = f" -> {args.channel}" if args.channel else ""
    sys.stdout.write(f"release {out['id']}: {out['version']} file sha256 {out['sha256']} "
                     f"({out['size']} bytes){channel}\n")
    return 0


def release_list(args: argparse.Namespace) -> int:
    """``release list --fleet F``: one row per release."""
    with _client(args) as client:
        out = client.releases(args.fleet)
    _print(out, args.json, table(
        ("ID", "VERSION", "SECURE VERSION", "SIZE", "FILE SHA256"),
        [(r["id"], r["version"], r["secure_version"], r["size"], r["sha256"]) for r in out]))
    return 0


def release_abort(args: argparse.Namespace) -> int:
    """``release abort DEPLOYMENT [--reason TEXT]``."""
    with _client(args) as client:
        out = client.abort_deployment(args.deployment, args.reason)
    _print(out, args.json, [f"deployment {out['id']} ({out['device_id']}, release "
                            f"{out['release_id']}): {out['state']}"])
    return 0


# --- channel -------------------------------------------------------------------------------


def channel_set(args: argparse.Namespace) -> int:
    """``channel set CHANNEL RELEASE --fleet F``."""
    with _client(args) as client:
        out = client.set_channel(args.fleet, args.channel, args.release, args.force)
    _print(out, args.json, [f"{args.fleet}/{out['name']} -> release {out['release_id']} "
                            f"({out['version']})"])
    return 0


def _rollout_lines(fleet: str, out: dict[str, Any]) -> list[str]:
    state = f"PAUSED: {out['paused_reason']}" if out["paused"] else "running"
    limit = out["max_in_flight"] if out["max_in_flight"] is not None else "none"
    threshold = out["failure_threshold"] if out["failure_threshold"] is not None else "none"
    share = out["rollout_percent"] if out["rollout_percent"] is not None else 100
    return [f"{fleet}/{out['channel']} -> release {out['release_id']}: {state}; "
            f"{share}% of devices; max in flight {limit}; failures {out['failure_count']} "
            f"(threshold {threshold})"]


def channel_rollout(args: argparse.Namespace) -> int:
    """``channel rollout CHANNEL --fleet F [limits] [--show]``."""
    with _client(args) as client:
        if args.show:
            out = client.rollout(args.fleet, args.channel)
        else:
            out = client.set_rollout(args.fleet, args.channel, args.max_in_flight,
                                     args.failure_threshold, args.percent)
    _print(out, args.json, _rollout_lines(args.fleet, out))
    return 0


def channel_resume(args: argparse.Namespace) -> int:
    """``channel resume CHANNEL --fleet F``."""
    with _client(args) as client:
        out = client.resume(args.fleet, args.channel)
    _print(out, args.json, _rollout_lines(args.fleet, out))
    return 0


# --- device (admin view) -------------------------------------------------------------------


def device_add(args: argparse.Namespace) -> int:
    """``device add ID --fleet F [--channel C] [--token-file FILE]``."""
    from otaforge.fsutil import atomic_write_text

    with _client(args) as client:
        out = client.create_device(args.fleet, args.device_id, args.channel)
        if args.token_file is not None:
            atomic_write_text(args.token_file, out["token"] + "\n", mode=0o600)
    shown = (f"device token written to {args.token_file}" if args.token_file is not None
             else f"device token: {out['token']}")
    _print(out, args.json, [f"device {out['id']} in {out['fleet']}/{out['channel']}", shown,
                            f"download URL (no header needed; keep it secret): "
                            f"{out['download_url']}"])
    return 0


def device_download_url(args: argparse.Namespace) -> int:
    """``device download-url ID [--revoke]``: a new URL (the old one stops working)."""
    with _client(args) as client:
        if args.revoke:
            client.revoke_download_url(args.device_id)
            out: dict[str, Any] = {"device_id": args.device_id, "download_url": None}
        else:
            out = client.rotate_download_url(args.device_id)
    _print(out, args.json, [f"device {args.device_id}: download URL revoked" if args.revoke
                            else f"device {args.device_id}: download URL {out['download_url']}"])
    return 0


def device_list(args: argparse.Namespace) -> int:
    """``device list [--fleet F]``: one row per device."""
    with _client(args) as client:
        out = client.devices(args.fleet)
    _print(out, args.json, table(
        ("ID", "FLEET", "CHANNEL", "RUNNING", "STATE", "LAST CHECK-IN"),
        [(d["id"], d["fleet"], d.get("channel"), d["running_version"], d["state"],
          d["last_check_in"] or "never") for d in out]))
    return 0


def device_show(args: argparse.Namespace) -> int:
    """``device show ID``: facts, deployments and recent events."""
    with _client(args) as client:
        out = client.device(args.device_id)
    lines = [f"{k}: {out[k]}" for k in ("id", "fleet", "channel", "state", "running_version",
                                         "running_sha256", "running_partition",
                                         "otadata_state", "efuse_secure_version",
                                         "last_check_in", "hw_revision")]
    lines.append(f"tags: {','.join(out.get('tags') or []) or '(none)'}")
    if out.get("penalty_cleared_at"):
        lines.append(f"penalty box cleared: {out['penalty_cleared_at']}")
    lines += [f"deployment {d['id']}: release {d['release_id']} {d['state']}"
              f"{' (' + d['reason'] + ')' if d['reason'] else ''}" for d in out["deployments"]]
    lines += [f"event {e['event_id']}: {e['state']} {e['reason'] or ''}".rstrip()
              for e in out["events"]]
    _print(out, args.json, lines)
    return 0
