"""The one definition of the ``otaforge`` command line: every group, command and option.

The argparse parsers (:mod:`otaforge.cli._parser`), ``-h``/``--help``, the shell completion
scripts (:mod:`otaforge.cli._completion`) and ``docs/cli.md`` are all made from :data:`COMMANDS`;
``tests/cli/test_cli_spec.py`` fails when they drift apart. A command's handler is named as
``"module:function"`` and imported only when that command runs: it receives the parsed
:class:`argparse.Namespace` (attribute names: the first long flag without dashes, ``-`` as
``_``; a positional's own name) and returns the exit code (``None`` means 0). Errors it raises
are mapped to exit codes in one place, :func:`otaforge.cli._common.handle_errors`.

Adding a command = one :class:`Cmd` entry here (or in ``_spec_server.py``) + its handler.

Data only (the vocabulary is in :mod:`otaforge.cli._model`, the server-side commands in
:mod:`otaforge.cli._spec_server`): every ``otaforge`` run loads it.
"""

from __future__ import annotations

from otaforge.cli._model import (
    ANTI_ROLLBACK,
    CHIP,
    FLASH_SIZE_FIT,
    JSON,
    KEYFILE,
    PRIMARY_BOOT,
    PT_OFFSET,
    RECOVERY_BOOT,
    REVOKE,
    ROLLBACK,
    SB_VERSION,
    SECURE,
    SERVER,
    TABLE_OFFSET,
    Cmd,
    Opt,
)
from otaforge.cli._spec_server import SERVER_COMMANDS

__all__ = ["COMMANDS", "GROUPS", "Cmd", "Opt", "find"]

# group -> one-line help (the order here is the order in ``otaforge --help``)
GROUPS: dict[str, str] = {
    "partitions": "ESP-IDF partition tables: convert CSV <-> binary, check",
    "image": "ESP-IDF app images: info, build, sign, verify",
    "keys": "signing keys for Secure Boot v2 and v1 signed apps",
    "flash": "whole-flash images: compose, inspect, erase-otadata",
    "device": "emulated ESP32 (sweep, run); devices on a server (add, list, ...)",
    "server": "the HTTPS update server: init, run, wait",
    "delta": "esp_delta_ota patches: create, apply, info",
    "firmware": "ESP-IDF app code on the emulated ESP32: build, run, sweep",
    "fleet": "fleets on an update server; rehearse a rollout (simulate)",
    "release": "releases on an update server",
    "channel": "channels and their rollout limits on an update server",
    "rollout": "health-gated rollouts in waves: create, show, pause, resume, abort",
    "user": "users and roles on an update server: add, list, revoke, token",
    "audit": "the audit log of an update server",
}

_PART = "otaforge.cli.partitions"
_IMAGE = "otaforge.cli.image"
_SIGN = "otaforge.cli.image_sign"
_KEYS = "otaforge.cli.keys"
_FLASH = "otaforge.cli.flash"

_OTA_SLOTS = tuple(
    Opt(f"--ota-{n}", metavar="APP", hidden=n > 1,
        help="app for ota_0 (likewise --ota-1 .. --ota-15)" if n == 0 else f"app for ota_{n}")
    for n in range(16))

COMMANDS: tuple[Cmd, ...] = (
    # --- partitions ------------------------------------------------------------------------
    Cmd("partitions", "convert", "convert a partition table CSV <-> binary",
        f"{_PART}:convert", (
            Opt("input", help="CSV or binary partition table ('-': stdin)"),
            Opt("output", help="file to write ('-': stdout)"),
            FLASH_SIZE_FIT, TABLE_OFFSET, PRIMARY_BOOT, RECOVERY_BOOT, SECURE,
            Opt("--disable-md5sum", kind="flag",
                help="no MD5 record (tables for ESP-IDF older than v3.1)"),
        ), "Convert CSV to binary or binary to CSV (decided by content), byte-identical to "
           "ESP-IDF's gen_esp32part.py."),
    Cmd("partitions", "check", "print a table and check its OTA layout",
        f"{_PART}:check", (
            Opt("input", help="CSV or binary partition table"),
            FLASH_SIZE_FIT,
            Opt("--image", metavar="APP", help="app image that must fit every app slot"),
            TABLE_OFFSET, PRIMARY_BOOT, RECOVERY_BOOT, SECURE, JSON,
        ), "Print the table (offsets, sizes, free space) and the OTA checks. Exit 1 when a "
           "check is critical, 2 when the table is invalid."),
    # --- image -----------------------------------------------------------------------------
    Cmd("image", "info", "show an app image (as esptool image-info)", f"{_IMAGE}:info", (
        Opt("file", help="app image (.bin); trailing 0xFF or a signature is fine"),
        JSON,
    ), "Show an ESP-IDF app image's header, segments, checksum, image hash and app "
       "description, as esptool image-info. Exit 1 when the checksum or the image hash is "
       "invalid (the report is still printed), 2 when the file is not an app image."),
    Cmd("image", "build", "build a valid synthetic app image", f"{_IMAGE}:build", (
        Opt("--output", "-o", required=True, metavar="FILE", help="image file to write"),
        Opt("--version", required=True, metavar="TEXT", help="esp_app_desc_t.version"),
        Opt("--project", default="otaforge-demo", metavar="NAME",
            help="esp_app_desc_t.project_name (default otaforge-demo)"),
        Opt("--secure-version", kind="int", default=0, lo=0, hi=0xFFFFFFFF, metavar="N",
            help="anti-rollback secure_version (default 0)"),
        Opt("--chip", default="esp32", metavar="CHIP",
            help="target chip, as esptool names it (default esp32)"),
        Opt("--size", kind="int", lo=64, metavar="BYTES",
            help="approximate image size (default 196608)"),
        Opt("--seed", kind="int", default=0, lo=0, metavar="N",
            help="content variant: the same number gives the same bytes (default 0)"),
        Opt("--idf-ver", default="v5.4.1", metavar="TEXT",
            help="esp_app_desc_t.idf_ver (default v5.4.1)"),
        Opt("--min-chip-rev-full", kind="int", default=0, lo=0, hi=0xFFFF, metavar="REV",
            help="header min_chip_rev_full"),
        Opt("--max-chip-rev-full", kind="int", default=0, lo=0, hi=0xFFFF, metavar="REV",
            help="header max_chip_rev_full (0: unset)"),
    ), "Build a valid synthetic app image (deterministic; esptool calls it valid)."),
    Cmd("image", "sign", "sign an app image (as espsecure sign-data)", f"{_SIGN}:sign", (
        Opt("image", help="image to sign"),
        Opt("--output", "-o", required=True, metavar="FILE", help="signed image to write"),
        Opt("--keyfile", "--key", "-k", required=True, many=True, metavar="KEY",
            help="private key PEM (repeat for up to 3 keys, one signature block each)"),
        SB_VERSION,
        Opt("--append", kind="flag",
            help="keep the input's signature blocks and add these keys' blocks"),
    ), "Sign an app image: the same bytes as espsecure sign-data. The output is written "
       "atomically."),
    Cmd("image", "verify", "verify a signed image (as espsecure verify-signature)",
        f"{_SIGN}:verify", (
            Opt("image", help="signed image"),
            Opt("--keyfile", "--key", "-k", many=True, metavar="KEY",
                help="trusted key: private or public PEM (v1 also raw 64 bytes); repeatable"),
            Opt("--digest", many=True, metavar="FILE",
                help="trusted eFuse key digest file (32 bytes) instead of a key; repeatable"),
            REVOKE, SB_VERSION, JSON,
        ), "Verify a signed image: exit 0 valid, 1 invalid (with the reason)."),
    # --- keys ------------------------------------------------------------------------------
    Cmd("keys", "generate", "generate a signing key", f"{_KEYS}:generate", (
        Opt("keyfile", help="private key file to write (PEM, mode 0600)"),
        Opt("--version", kind="int", default=2, lo=1, hi=2, metavar="{1,2}",
            help="2: Secure Boot v2 (default); 1: v1 signed apps (ECDSA P-256)"),
        Opt("--scheme", choices=("rsa3072", "ecdsa256", "ecdsa384"),
            help="Secure Boot v2 scheme (default rsa3072)"),
        Opt("--force", kind="flag", help="overwrite an existing key file"),
        JSON,
    ), "Generate a signing key, as espsecure generate-signing-key. KEEP IT SAFE: losing it "
       "means no more updates; leaking it means forged firmware."),
    Cmd("keys", "digest", "write a public key's eFuse digest", f"{_KEYS}:digest", (
        Opt("key", required=False, help="private or public key (PEM)"),
        KEYFILE,
        Opt("--output", "-o", required=True, metavar="FILE",
            help="where to write the 32-byte digest"),
    ), "Write the public key digest burned into eFuse, as espsecure "
       "digest-sbv2-public-key."),
    Cmd("keys", "public", "extract the public key", f"{_KEYS}:public", (
        Opt("key", required=False, help="private key (PEM)"),
        KEYFILE,
        Opt("--output", "-o", required=True, metavar="FILE", help="public key file to write"),
        Opt("--version", kind="int", default=2, lo=1, hi=2, metavar="{1,2}",
            help="2: PEM (default); 1: raw 64-byte X||Y (signature_verification_key.bin)"),
    ), "Extract the public key, as espsecure extract-public-key."),
    # --- flash -----------------------------------------------------------------------------
    Cmd("flash", "inspect", "what the bootloader boots from a flash image, and why",
        f"{_FLASH}:inspect", (
            Opt("file", help="flash image (an esptool read-flash dump, or merged)"),
            JSON,
            Opt("--chip", metavar="CHIP",
                help="target chip (default: from the bootloader header, else esp32)"),
            Opt("--chip-rev", kind="int", lo=0, hi=0xFFFF, metavar="REV",
                help="chip revision, major*100+minor (default: the image's minimum is met)"),
            Opt("--efuse-blk-rev", kind="int", lo=0, hi=0xFFFF, metavar="REV",
                help="eFuse block revision, major*100+minor (not ESP32; default unchecked)"),
            ROLLBACK, ANTI_ROLLBACK,
            Opt("--efuse-secure-version", kind="int", default=0, lo=0, metavar="N",
                help="secure version burned in eFuse (default 0)"),
            Opt("--secure-version-bits", kind="int", lo=1, hi=32, metavar="N",
                help="CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD (default: the chip's)"),
            Opt("--flash-size", metavar="SIZE",
                help="flash size (default: from the bootloader header)"),
            PT_OFFSET,
            Opt("--factory-reset", kind="flag",
                help="CONFIG_BOOTLOADER_FACTORY_RESET with the pin held: erase nvs and "
                     "otadata first"),
            Opt("--app-test", kind="flag",
                help="CONFIG_BOOTLOADER_APP_TEST with the pin held: boot the test app"),
            Opt("--secure-boot-v2", kind="flag",
                help="Secure Boot v2: apps must be signed by an eFuse key"),
            Opt("--key-digest", many=True, metavar="FILE",
                help="eFuse key digest file (32 bytes, espsecure digest-sbv2-public-key); "
                     "repeat for key slots 0..2"),
            REVOKE,
            Opt("--report-only", kind="flag", help="exit 0 even when nothing boots"),
        ), "Partitions, otadata, app slots, and which app the ESP-IDF bootloader boots next "
           "(and why). Exit 1 when nothing boots, unless --report-only."),
    Cmd("flash", "compose", "build a flash image (as idf.py flash)", f"{_FLASH}:compose", (
        Opt("--partitions", required=True, metavar="TABLE",
            help="partition table: CSV (gen_esp32part syntax) or binary"),
        Opt("--output", "-o", required=True, metavar="FILE", help="flash image to write"),
        Opt("--factory", metavar="APP", help="factory app"),
        *_OTA_SLOTS,
        Opt("--test", metavar="APP", help="test app"),
        Opt("--bootloader", metavar="IMAGE",
            help="bootloader image (at the chip's bootloader offset)"),
        CHIP,
        Opt("--flash-size", metavar="SIZE",
            help="flash size, e.g. 4MB (default: the smallest that holds the table)"),
        PT_OFFSET,
    ), "Build a flash image: partition table, apps, erased otadata (as idf.py flash)."),
    Cmd("flash", "erase-otadata", "erase otadata (as idf.py erase-otadata)",
        f"{_FLASH}:erase_otadata", (
            Opt("file", help="flash image to change in place"),
            PT_OFFSET,
        ), "Erase the otadata partition (0xFF), as idf.py erase-otadata: the next boot picks "
           "factory, or ota_0 without factory."),
    # --- device ----------------------------------------------------------------------------
    Cmd("device", "sweep", "cut power at every flash operation of an update",
        "otaforge.cli.device:sweep", (
            Opt("--partitions", required=True, metavar="TABLE",
                help="partition table (CSV or binary)"),
            Opt("--from", required=True, metavar="APP", help="app image the device runs first"),
            Opt("--to", required=True, metavar="APP", help="the update's app image"),
            Opt("--flash-size", default="8MB", metavar="SIZE", help="flash size (default 8MB)"),
            Opt("--rollback", kind="flag",
                help="CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE; also sweeps rollbacks (the new "
                     "app fails its self-test or panics before confirming)"),
            Opt("--anti-rollback", kind="flag",
                help="CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK (needs --rollback)"),
            Opt("--modes", default="before,after,torn", metavar="LIST",
                help="power-cut modes, comma separated: before, after, torn"),
            CHIP,
            Opt("--chunk-size", kind="int", default=4096, lo=1, metavar="BYTES",
                help="bytes per esp_ota_write call (default 4096)"),
            Opt("--bulk-erase", kind="flag",
                help="erase the whole slot in esp_ota_begin (OTA_SIZE_UNKNOWN)"),
            Opt("--delta", kind="flag",
                help="update with a resumable esp_delta_ota patch from --from to --to"),
            Opt("--start", default="factory", choices=("factory", "ota"),
                help="before the update: old app in factory, otadata blank (default); or "
                     "installed by OTA"),
            Opt("--seed", kind="int", default=0, lo=0, metavar="N",
                help="random seed of the torn-operation lengths (default 0)"),
            Opt("--replay", kind="int", lo=0, metavar="OP",
                help="replay one case: cut at this operation (with --flow, one --modes)"),
            Opt("--flow", default="update", choices=("update", "rollback", "panic"),
                help="flow for --replay (default update)"),
            Opt("--verbose", "-v", kind="flag", help="print every case"),
            JSON,
        ), "Power-cut sweep of a complete OTA update on an emulated device: never bricked. "
           "Exit 1 when a case bricks the device or fails a check."),
    Cmd("device", "run", "run one emulated device against an update server",
        "otaforge.cli.device_run:run", (
            Opt("--flash", required=True, metavar="FILE",
                help="the device's flash image (read, and written back after the run)"),
            Opt("--fleet", required=True, metavar="NAME", help="the device's fleet"),
            SERVER,
            Opt("--ca", required=True, env="OTAFORGE_CA", metavar="PEM",
                help="CA certificate the device pins (DATA/server_cert.pem)"),
            Opt("--token", required=True, env="OTAFORGE_TOKEN", metavar="TOKEN",
                help="device or fleet enrollment token, or @FILE"),
            Opt("--device-id", metavar="ID",
                help="device id on the server (default: the flash file's name)"),
            Opt("--chip", default="esp32", metavar="CHIP", help="the device's chip"),
            Opt("--rollback", kind="bool", default=True,
                help="CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (default on)"),
            Opt("--anti-rollback", kind="flag",
                help="CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK (secure_version eFuse)"),
            Opt("--secure-boot-key", many=True, metavar="KEY",
                help="enable Secure Boot v2, burn this key's digest (first run; repeatable)"),
            Opt("--partial-download", kind="int", lo=4096, metavar="BYTES",
                help="esp_https_ota partial download: Range requests of this many bytes"),
            Opt("--app", many=True, metavar="VERSION=BEHAVIOUR",
                help="how an app behaves: healthy, fails_self_test, never_confirms, hangs, "
                     "panics (repeatable; default healthy)"),
            JSON,
        ), "Run one emulated ESP32 against an update server: power on, check in, download, "
           "reboot, self-test, confirm or roll back. Exit 3 when the download was interrupted "
           "(run again to resume)."),
    # --- delta -----------------------------------------------------------------------------
    Cmd("delta", "create", "make an esp_delta_ota patch", "otaforge.cli.delta:create", (
        Opt("base", help="base app image (what the device runs)"),
        Opt("new", help="new app image"),
        Opt("--output", "-o", required=True, metavar="FILE", help="patch file to write"),
        JSON,
    ), "Make an esp_delta_ota patch (Espressif's format), checked by applying it."),
    Cmd("delta", "apply", "rebuild the new image from a patch", "otaforge.cli.delta:apply", (
        Opt("base", help="base app image the patch was made from"),
        Opt("patch", help="esp_delta_ota patch file"),
        Opt("--output", "-o", required=True, metavar="FILE", help="new image file to write"),
    ), "Rebuild the new image; refuses a patch made for another base (exit 1)."),
    Cmd("delta", "info", "show a patch's headers", "otaforge.cli.delta:info", (
        Opt("patch", help="esp_delta_ota patch file"), JSON,
    ), "Show a patch's headers: base hash, detools type, compression, new image size."),
    # --- firmware --------------------------------------------------------------------------
    Cmd("firmware", "build", "build an ESP-IDF project for the emulated ESP32",
        "otaforge.cli.firmware:build", (
            Opt("project", help="ESP-IDF project directory"),
            Opt("--output", "-o", required=True, metavar="APP", help="app image to write"),
            Opt("--version", metavar="V",
                help="app version (default PROJECT_VER or version.txt)"),
            Opt("--secure-version", kind="int", lo=0, metavar="N",
                help="anti-rollback secure_version (default "
                     "CONFIG_BOOTLOADER_APP_SECURE_VERSION)"),
            CHIP,
            Opt("--define", "-D", many=True, metavar="NAME=VALUE",
                help="sdkconfig override (repeatable), e.g. -D CONFIG_OTA_APP_SELF_TEST_FAIL=y"),
            Opt("--sign", metavar="KEY", help="sign with this Secure Boot v2 key (PEM)"),
        ), "Build an ESP-IDF project (CMakeLists, components, sdkconfig.defaults, embedded "
           "files) with the host C compiler and write a real app image for the emulator."),
    Cmd("firmware", "run", "power the emulated ESP32 on and run its firmware",
        "otaforge.cli.firmware:run", (
            Opt("--flash", required=True, metavar="FILE",
                help="the device's flash image (written back after the run)"),
            Opt("--boots", kind="int", default=8, lo=1, metavar="N",
                help="stop after N boots (default 8)"),
            Opt("--host", many=True, metavar="NAME=IP",
                help="the device resolves NAME to IP (repeatable)"),
            Opt("--wdt-timeout", kind="float", default=10.0, lo=0.0, metavar="S",
                help="seconds a firmware may run without a system call before the watchdog "
                     "resets it (default 10)"),
            CHIP,
            Opt("--rollback", kind="bool",
                help="override CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE"),
            Opt("--anti-rollback", kind="bool",
                help="override CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK"),
            JSON,
        ), "Run the booted image's app_main() in a fresh process per boot, printing its "
           "console as idf.py monitor would, until idle or N boots. Exit 1 when bricked."),
    Cmd("firmware", "sweep", "cut power at every flash operation of the firmware's update",
        "otaforge.cli.firmware:sweep", (
            Opt("--flash", required=True, metavar="FILE",
                help="the device's flash image (read only: never written)"),
            Opt("--modes", default="before,after,torn", metavar="LIST",
                help="power-cut modes (default before,after,torn)"),
            Opt("--boots", kind="int", default=8, lo=1, metavar="N",
                help="boots per case before it counts as a reset loop (default 8)"),
            Opt("--host", many=True, metavar="NAME=IP",
                help="the device resolves NAME to IP (repeatable)"),
            Opt("--wdt-timeout", kind="float", default=10.0, lo=0.0, metavar="S",
                help="seconds a firmware may run without a system call (default 10)"),
            Opt("--ops", metavar="LIST",
                help="sweep only these op indices, e.g. 0-20,300 (default every op)"),
            Opt("--jobs", "-j", kind="int", default=2, lo=1, metavar="N",
                help="worker processes running cases (default 2)"),
            Opt("--seed", kind="int", default=0, lo=0, metavar="N",
                help="seeds the torn length of each torn case (default 0)"),
            CHIP,
            Opt("--rollback", kind="bool",
                help="override CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE"),
            Opt("--anti-rollback", kind="bool",
                help="override CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK"),
            JSON,
        ), "Run the device once until idle (its firmware updating against the server it is "
           "built for), recording every flash operation; then, for each operation and mode, "
           "cut power there, boot until idle and check that the device is not bricked and "
           "runs the old or the new image whole, with consistent otadata. Ends with 'N "
           "cases, 0 bricked'; exit 1 when a case fails."),
    *SERVER_COMMANDS,
    # --- top-level commands ----------------------------------------------------------------
    Cmd("", "demo", "run the whole OTA flow end to end on built-in defaults",
        "otaforge.cli.demo:demo", (
            Opt("--keep", metavar="DIR",
                help="keep the server data and signing key in this new directory "
                     "(default: a temporary one, removed at the end)"),
        ), "Run the OTA flow end to end: an update server, signed images, an emulated ESP32 "
           "that updates, rolls back, refuses a downgrade and survives a power cut."),
    Cmd("", "completion", "print a shell completion script", "otaforge.cli._completion:main", (
        Opt("shell", choices=("bash", "zsh", "fish"), help="bash, zsh or fish"),
    ), "Print a completion script for your shell. bash: "
       "'eval \"$(otaforge completion bash)\"' in ~/.bashrc; zsh: the same with zsh in "
       "~/.zshrc; fish: 'otaforge completion fish > ~/.config/fish/completions/"
       "otaforge.fish'."),
)


def find(group: str, name: str) -> Cmd | None:
    """The command ``otaforge GROUP NAME`` (``group`` empty for a top-level command)."""
    for cmd in COMMANDS:
        if cmd.group == group and cmd.name == name:
            return cmd
    return None
