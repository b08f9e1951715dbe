"""``otaforge rollout create|show|list|pause|resume|abort|penalty-clear`` and
``otaforge device target``: health-gated rollouts on a (remote) update server.

Durations are ``90s``, ``15m``, ``1h`` or ``2d``; ``--max-failures`` is a device count
(``5``) or a share of the opened waves (``5%``). ``--json`` prints the server's JSON.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from otaforge.cli.manage import _client, _print, table
from otaforge.errors import InputError

_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|min|m|h|d|)\s*$")
_THRESHOLD = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*$")


def seconds(text: str, flag: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` -> whole seconds."""
    found = _DURATION.match(text)
    if found is None:
        raise InputError(f"{flag} {text!r}: not a duration; write e.g. 90s, 15m, 1h or 2d")
    return round(float(found.group(1)) * _UNITS[found.group(2)])


def threshold(text: str) -> tuple[int | None, float | None]:
    """``--max-failures``: (device count, None) or (None, percent)."""
    found = _THRESHOLD.match(text)
    if found is None:
        raise InputError(f"--max-failures {text!r}: write a device count (5) or a share of "
                         "the opened waves (5%)")
    if found.group(2):
        pct = float(found.group(1))
        if pct > 100:
            raise InputError(f"--max-failures {text!r}: a share must be at most 100%")
        return None, pct
    if "." in found.group(1):
        raise InputError(f"--max-failures {text!r}: a device count is a whole number")
    return int(found.group(1)), None


def _plan_body(args: argparse.Namespace) -> dict[str, Any]:
    """The API's ``RolloutCreate`` fields from the flags (InputError for bad values: the
    waves are checked here, by the server's own parser, so bad input exits 2)."""
    from otaforge.server.waves import parse_waves

    parse_waves(args.waves)
    count, pct = threshold(args.max_failures)
    return {"channel": args.channel, "waves": args.waves, "canary": args.canary or [],
            "tags": args.tag or [], "hw_revisions": args.hw_revision or [],
            "from_versions": args.from_version or [],
            "soak_s": seconds(args.soak, "--soak"), "confirm_percent": args.confirm_percent,
            "max_failures": count, "max_failures_percent": pct,
            "silent_after_s": max(1, seconds(args.silent_after, "--silent-after")),
            "stuck_timeout_s": max(1, seconds(args.stuck_timeout, "--stuck-timeout")),
            "max_in_flight": args.concurrency, "rate_per_min": args.rate,
            "rate_factor": args.rate_factor, "rate_max": args.rate_max,
            "penalty_failures": args.penalty,
            "eval_interval_s": max(1, seconds(args.eval_interval, "--eval-interval")),
            "revert": args.revert, "force": args.force}


def _head(out: dict[str, Any]) -> str:
    state = out["state"].upper() if out["state"] != "running" else "running"
    why = f": {out['reason']}" if out.get("reason") else ""
    back = " (reverting to the previous release)" if out.get("reverting") else ""
    return (f"rollout {out['id']}: {out['fleet']}/{out['channel']} -> {out['version']} "
            f"(release {out['release_id']}), wave {out['wave'] + 1}/{out['stages']} "
            f"({out['wave_name']}), {state}{why}{back}")


def detail_lines(out: dict[str, Any], every: list[dict[str, Any]] | None = None) -> list[str]:
    """A rollout as text: the headline, a table of waves, the decisions."""
    lines = [_head(out), f"in flight: {out['in_flight']}"]
    lines += table(("WAVE", "SIZE", "REACHED", "CONFIRMED", "SOAKED", "ROLLED BACK",
                    "FAILED", "SILENT", "STUCK"),
                   [(w["name"] + ("" if w["opened"] else " (not open)"), w["size"],
                     w["reached"], w["confirmed"] + w["soaked"], w["soaked"],
                     w["rolled_back"], w["failed"], w["silent"], w["stuck"])
                    for w in out["waves"]])
    for d in every if every is not None else out["decisions"][-5:]:
        lines.append(f"#{d['seq']} {d['at']} {d['action']}: {d['reason']}")
    return lines


def create(args: argparse.Namespace) -> int:
    """``rollout create RELEASE --fleet F [plan flags]``."""
    body = _plan_body(args)
    with _client(args) as client:
        out = client.create_rollout(args.fleet, args.release, **body)
    _print(out, args.json, detail_lines(out))
    return 0


def show(args: argparse.Namespace) -> int:
    """``rollout show ID [--decisions]``."""
    with _client(args) as client:
        out = client.rollout_status(args.rollout)
        every = client.rollout_decisions(args.rollout) if args.decisions else None
    if every is not None:
        out = {**out, "decisions": every}
    _print(out, args.json, detail_lines(out, every))
    return 0


def listing(args: argparse.Namespace) -> int:
    """``rollout list [--fleet F] [--channel C] [--state S]``."""
    with _client(args) as client:
        out = client.rollouts(args.fleet, args.channel, args.state)
    _print(out, args.json, table(
        ("ID", "FLEET", "CHANNEL", "RELEASE", "WAVE", "STATE", "REASON"),
        [(r["id"], r["fleet"], r["channel"], r["version"],
          f"{r['wave'] + 1}/{r['stages']} {r['wave_name']}", r["state"], r["reason"])
         for r in out]))
    return 0


def pause(args: argparse.Namespace) -> int:
    """``rollout pause ID [--reason TEXT] [--revert]``."""
    with _client(args) as client:
        out = client.pause_rollout(args.rollout, args.reason, args.revert)
    _print(out, args.json, [_head(out)])
    return 0


def resume(args: argparse.Namespace) -> int:
    """``rollout resume ID``."""
    with _client(args) as client:
        out = client.resume_rollout(args.rollout)
    _print(out, args.json, [_head(out)])
    return 0


def abort(args: argparse.Namespace) -> int:
    """``rollout abort ID [--reason TEXT] [--revert]``."""
    with _client(args) as client:
        out = client.abort_rollout(args.rollout, args.reason, args.revert)
    _print(out, args.json, [_head(out)])
    return 0


def penalty_clear(args: argparse.Namespace) -> int:
    """``rollout penalty-clear DEVICE``."""
    with _client(args) as client:
        out = client.clear_penalty(args.device_id)
    _print(out, args.json, [f"device {out['device_id']}: penalty box cleared at "
                            f"{out['penalty_cleared_at']}"])
    return 0


def device_target(args: argparse.Namespace) -> int:
    """``device target DEVICE [--tag T ...] [--clear-tags] [--hw-revision R]
    [--clear-hw-revision]``."""
    if args.tag and args.clear_tags:
        raise InputError("--tag and --clear-tags contradict each other; give one")
    if args.hw_revision is not None and args.clear_hw_revision:
        raise InputError("--hw-revision and --clear-hw-revision contradict each other")
    tags = [] if args.clear_tags else (args.tag or None)
    hw: dict[str, str | None] = {}
    if args.hw_revision is not None or args.clear_hw_revision:
        hw["hw_revision"] = args.hw_revision
    with _client(args) as client:
        out = client.set_targeting(args.device_id, tags, **hw)
    _print(out, args.json, [f"device {out['device_id']}: tags "
                            f"{','.join(out['tags']) or '(none)'}; hardware revision "
                            f"{out['hw_revision'] or '(unknown)'}"])
    return 0
