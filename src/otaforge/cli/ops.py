"""``otaforge user|audit`` and the retire/revoke/pause commands: operating a server.

``user add NAME --role ROLE`` prints a generated password once (``--password-stdin`` reads
it from standard input instead); ``user token NAME`` prints a per-user API token once.
"""

from __future__ import annotations

import argparse
import sys

from otaforge.cli.manage import _client, _print, _rollout_lines, table
from otaforge.errors import InputError

MIN_PASSWORD = 10  # as the server's users.MIN_PASSWORD (the CLI does not import the server)


def user_add(args: argparse.Namespace) -> int:
    """``user add NAME --role R [--password-stdin]``."""
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < MIN_PASSWORD:
            raise InputError(f"--password-stdin: the password must have at least "
                             f"{MIN_PASSWORD} characters")
    with _client(args) as client:
        out = client.add_user(args.name, args.role, password)
    lines = [f"user {out['name']}: {out['role']}"]
    if out.get("password"):
        lines.append(f"password (shown once): {out['password']}")
    _print(out, args.json, lines)
    return 0


def user_list(args: argparse.Namespace) -> int:
    """``user list``: one row per user."""
    with _client(args) as client:
        out = client.users()
    _print(out, args.json, table(
        ("NAME", "ROLE", "TOKENS", "CREATED", "REVOKED"),
        [(u["name"], u["role"], u["tokens"], u["created_at"], u["revoked_at"]) for u in out]))
    return 0


def user_revoke(args: argparse.Namespace) -> int:
    """``user revoke NAME [--tokens-only]``."""
    with _client(args) as client:
        if args.tokens_only:
            out = client.revoke_user_tokens(args.name)
            _print(out, args.json, [f"user {args.name}: {out['revoked']} token(s) revoked"])
            return 0
        out = client.revoke_user(args.name)
    _print(out, args.json, [f"user {out['name']}: revoked (tokens and sessions ended)"])
    return 0


def user_token(args: argparse.Namespace) -> int:
    """``user token NAME [--label TEXT]``: a new API token, shown once."""
    with _client(args) as client:
        out = client.user_token(args.name, args.label)
    _print(out, args.json, [f"API token for {out['user']} (shown once): {out['token']}"])
    return 0


def audit_list(args: argparse.Namespace) -> int:
    """``audit list [--limit N] [--actor NAME] [--action NAME] [--before ID]``."""
    with _client(args) as client:
        out = client.audit(args.limit, args.before, args.actor, args.action)
    _print(out, args.json, table(
        ("ID", "AT", "WHO", "ACTION", "TARGET", "RESULT", "STATUS", "FROM"),
        [(e["id"], e["at"], e["actor"], e["action"], e["target"], e["result"], e["status"],
          e["client"]) for e in out]))
    return 0


def fleet_retire(args: argparse.Namespace) -> int:
    """``fleet retire NAME``."""
    with _client(args) as client:
        out = client.retire_fleet(args.name)
    _print(out, args.json, [f"fleet {out['name']}: retired at {out['retired_at']}"])
    return 0


def release_retire(args: argparse.Namespace) -> int:
    """``release retire RELEASE --fleet F``."""
    with _client(args) as client:
        out = client.retire_release(args.fleet, args.release)
    _print(out, args.json, [f"release {out['id']} ({out['version']}): retired at "
                            f"{out['retired_at']}"])
    return 0


def device_retire(args: argparse.Namespace) -> int:
    """``device retire ID``."""
    with _client(args) as client:
        out = client.retire_device(args.device_id)
    _print(out, args.json, [f"device {out['id']}: retired (token and download URL ended)"])
    return 0


def device_revoke(args: argparse.Namespace) -> int:
    """``device revoke ID``: end the device's token."""
    with _client(args) as client:
        out = client.revoke_device_token(args.device_id)
    _print(out, args.json, [f"device {out['id']}: token revoked (register it again to "
                            "issue a new one)"])
    return 0


def channel_pause(args: argparse.Namespace) -> int:
    """``channel pause CHANNEL --fleet F [--reason TEXT]``."""
    with _client(args) as client:
        out = client.pause(args.fleet, args.channel, args.reason)
    _print(out, args.json, _rollout_lines(args.fleet, out))
    return 0
