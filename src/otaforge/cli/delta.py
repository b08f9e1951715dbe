"""``otaforge delta create|apply|info``: esp_delta_ota patches (logic in :mod:`otaforge.delta`).

Exit status: 0 ok, 1 the patch does not match the base (or did not rebuild the image), 2 bad
input (a file that is not an app image or not a patch); nothing is written on failure.
"""

from __future__ import annotations

import argparse
import json

from otaforge.cli._common import read_input
from otaforge.fsutil import atomic_write


def create(args: argparse.Namespace) -> int:
    """``delta create BASE NEW -o PATCH``: Espressif's format, checked by applying it."""
    from otaforge.delta.create import create_patch

    made = create_patch(read_input(args.base, "base app image"),
                        read_input(args.new, "new app image"))
    atomic_write(args.output, made.patch)
    report = made.to_json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.output}: {report['patch_size']} bytes, {100 * made.ratio:.2f}% of the new "
          f"image ({report['new_size']} bytes, {report['saved_bytes']} saved)")
    print(f"base validation hash {report['base_sha256']}")
    return 0


def apply(args: argparse.Namespace) -> int:
    """``delta apply BASE PATCH -o NEW``: refuses a patch made for another base."""
    from otaforge.delta.create import apply_checked

    image = apply_checked(read_input(args.base, "base app image"),
                          read_input(args.patch, "delta patch"))
    atomic_write(args.output, image)
    print(f"{args.output}: {len(image)} bytes")
    return 0


def info(args: argparse.Namespace) -> int:
    """``delta info PATCH``: base hash, detools type, compression, new image size."""
    from otaforge.delta.create import patch_info

    report = patch_info(read_input(args.patch, "delta patch")).to_json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    stock = "yes" if report["stock_esp_delta_ota"] else "no"
    print(f"esp_delta_ota patch, {report['size']} bytes")
    print(f"base validation hash: {report['base_sha256']}")
    print(f"detools: {report['patch_type']}, {report['compression']} "
          f"(window {report['heatshrink_window_sz2']}, lookahead "
          f"{report['heatshrink_lookahead_sz2']})")
    print(f"new image size: {report['new_size']} bytes")
    print(f"applicable by stock esp_delta_ota: {stock}")
    return 0
