"""The ``otaforge`` command: a root typer app whose groups are imported only when used.

The two benchmarked hot commands (``image info``, ``partitions convert``) have argparse fast
paths (:data:`FAST_PATHS`) that share their core and rendering code with the typer commands.

Each module listed in :data:`GROUPS` exposes ``register(app: typer.Typer) -> None`` that adds
its commands to the group's typer app. Only the group named on the command line is imported,
so ``otaforge image info`` does not pay for the server's imports.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

# group name -> (help, modules that register commands into it)
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "partitions": ("ESP-IDF partition tables: convert CSV <-> binary, check OTA layout.",
                   ("otaforge.cli.partitions",)),
    "image": ("ESP-IDF app images: info, build, sign, verify.",
              ("otaforge.cli.image", "otaforge.cli.image_sign")),
    "keys": ("Signing keys for Secure Boot v2 and signed apps.", ("otaforge.cli.keys",)),
    "flash": ("Flash images: compose, inspect, erase-otadata.", ("otaforge.cli.flash",)),
    "device": ("Emulated ESP32: power-cut sweep, run against a server.",
               ("otaforge.cli.device", "otaforge.cli.device_run", "otaforge.cli.manage")),
    "server": ("The HTTPS update server: init, run.", ("otaforge.cli.server",)),
    "firmware": ("ESP-IDF app code on the emulated ESP32: build, run.",
                 ("otaforge.cli.firmware",)),
    "fleet": ("Fleets on an update server.", ("otaforge.cli.manage",)),
    "release": ("Releases on an update server.", ("otaforge.cli.manage",)),
    "channel": ("Channels on an update server.", ("otaforge.cli.manage",)),
}
# hot commands served without importing typer/rich (start-up time is benchmarked against
# esptool): (group, command) -> module exposing ``fast_main(argv: list[str]) -> int``
FAST_PATHS: dict[tuple[str, str], str] = {
    ("image", "info"): "otaforge.cli.fast_image",
    ("partitions", "convert"): "otaforge.cli.fast_partitions",
    ("image", "sign"): "otaforge.cli.fast_sign",
    ("image", "verify"): "otaforge.cli.fast_verify",
}
# top-level commands: name -> module exposing register_root(app)
ROOT_COMMANDS: dict[str, str] = {"demo": "otaforge.cli.demo"}


def _load(module: str) -> object | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            return None  # group not built yet
        raise


def build_app(only: str | None = None) -> typer.Typer:
    """The root app with every group, or only the group ``only`` when it is known."""
    import typer  # imported here so the fast paths never pay for it

    app = typer.Typer(
        name="otaforge",
        help="Over-the-air firmware updates for ESP32 fleets.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    wanted_groups = [only] if only in GROUPS else list(GROUPS)
    for name in wanted_groups:
        help_text, modules = GROUPS[name]
        sub = typer.Typer(
            help=help_text,
            no_args_is_help=True,
            context_settings={"help_option_names": ["-h", "--help"]},
        )
        for module in modules:
            mod = _load(module)
            register = getattr(mod, f"register_{name}", None) or getattr(mod, "register", None)
            if register is not None:
                register(sub)
        app.add_typer(sub, name=name)
    wanted_root = [only] if only in ROOT_COMMANDS else ([] if only in GROUPS else ROOT_COMMANDS)
    for name in wanted_root:
        mod = _load(ROOT_COMMANDS[name])
        if mod is not None:
            mod.register_root(app)  # type: ignore[attr-defined]
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    fast = FAST_PATHS.get((args[0], args[1])) if len(args) >= 2 else None
    if fast is not None and "--help" not in args:
        mod = _load(fast)
        if mod is not None:
            raise SystemExit(mod.fast_main(args[2:]))  # type: ignore[attr-defined]
    first = next((a for a in args if not a.startswith("-")), None)
    app = build_app(first)
    app(args=args, prog_name="otaforge")


if __name__ == "__main__":
    main()
