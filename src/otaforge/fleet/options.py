"""The ``fleet simulate`` command line as one value: flags over ``--plan PLAN.toml``.

Kept out of ``cli/`` so any front end (typer today, argparse tomorrow) builds the same
:class:`~otaforge.fleet.run.SimSpec` from the same strings: the CLI passes what the user
typed, :func:`spec_from_options` reads the files and parses every value, raising one
:class:`~otaforge.errors.InputError` that names the flag.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from otaforge.errors import InputError
from otaforge.fleet.run import RemoteServer, SimSpec
from otaforge.fleet.spec import (
    Scenario,
    parse_amount,
    parse_duration,
    parse_faults,
    parse_release_fails,
    parse_waves,
    plan_from_toml,
)
from otaforge.fsutil import read_file


@dataclass(frozen=True)
class SimOptions:
    """What the user typed (None: not given)."""

    devices: int
    partitions: Path
    old: Path
    release: Path
    plan: Path | None = None
    faults: str | None = None
    seed: int = 0
    waves: str | None = None
    soak: str | None = None
    max_failures: str | None = None
    release_fails: str | None = None
    concurrency: int | None = None
    check_in: str | None = None
    revert: bool = False
    server: str | None = None
    token: str | None = None
    ca: Path | None = None
    controller: str = "rollout"


def spec_from_options(opts: SimOptions) -> SimSpec:
    """Read the files, parse every flag, and apply the flags over the plan file.

    Raises:
        InputError: a file cannot be read or a value does not parse (names the flag).
    """
    scenario = plan_from_toml(opts.plan) if opts.plan is not None else Scenario()
    plan = scenario.plan
    if opts.waves is not None:
        plan = replace(plan, waves=parse_waves(opts.waves))
    if opts.soak is not None:
        plan = replace(plan, soak_s=parse_duration(opts.soak, "--soak"))
    if opts.max_failures is not None:
        plan = replace(plan, max_failures=parse_amount(opts.max_failures, "--max-failures"))
    if opts.check_in is not None:
        plan = replace(plan, check_in_s=max(1.0, parse_duration(opts.check_in, "--check-in")))
    if opts.concurrency is not None:
        if opts.concurrency < 1:
            raise InputError(f"--concurrency {opts.concurrency}: must be at least 1")
        plan = replace(plan, concurrency=opts.concurrency)
    if opts.revert:
        plan = replace(plan, revert=True)
    scenario = replace(scenario, plan=plan)
    if opts.faults is not None:
        scenario = replace(scenario, faults=parse_faults(opts.faults))
    if opts.release_fails is not None:
        scenario = replace(scenario, release_fails=parse_release_fails(opts.release_fails))
    csv = read_file(opts.partitions, "partition table CSV").decode("utf-8", "replace")
    return SimSpec(devices=opts.devices, partitions_csv=csv,
                   old=read_file(opts.old, "running app image (--from)"),
                   new=read_file(opts.release, "release app image (--release)"),
                   scenario=scenario, seed=opts.seed, server=_remote(opts),
                   driver=_controller(opts.controller))


def _controller(name: str) -> Literal["rollout", "channel"]:
    if name == "rollout":
        return "rollout"
    if name == "channel":
        return "channel"
    raise InputError(f"--controller {name!r}: choose rollout or channel")


def _remote(opts: SimOptions) -> RemoteServer | None:
    if opts.server is None:
        return None
    if not opts.token or opts.ca is None:
        raise InputError("--server needs --token (the admin token, or @FILE) and --ca (the "
                         "server's server_cert.pem)")
    token = opts.token
    if token.startswith("@"):
        token = read_file(Path(token[1:]), "admin token").decode("utf-8", "replace").strip()
    return RemoteServer(opts.server, token, opts.ca)
