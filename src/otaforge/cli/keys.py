"""``otaforge keys``: generate signing keys, write the eFuse key digest, extract public keys.

Key files are interchangeable with ``espsecure generate-signing-key``. A private key is written
atomically with mode 0600 and is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._common import EXIT_BAD_INPUT, fail, handle_errors
from otaforge.crypto import keys as k
from otaforge.errors import InputError
from otaforge.fsutil import atomic_write

_V2_SCHEMES = ("rsa3072", "ecdsa256", "ecdsa384")


def _check_version(version: int) -> None:
    if version not in (1, 2):
        fail(f"--version {version}: use 1 (signed apps, ESP32 ECDSA) or 2 (Secure Boot v2)",
             EXIT_BAD_INPUT)


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such key file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a key file") from None


def _load_public(path: Path) -> k.PublicKey:
    try:
        return k.load_public_key(_read_key_file(path))
    except InputError as err:
        if str(err).startswith(f"{path}:"):
            raise
        raise InputError(f"{path}: {err}") from None


def _check_output(out: Path, what: str) -> None:
    if out.is_dir():
        fail(f"{out}: is a directory, expected the {what} to write", EXIT_BAD_INPUT)
    if not out.parent.is_dir():
        fail(f"{out}: folder {out.parent} does not exist (create it first)", EXIT_BAD_INPUT)


def generate(
    out: Annotated[Path, typer.Argument(help="Private key file to write (PEM, mode 0600).")],
    version: Annotated[int, typer.Option("--version", "-v",
                                         help="1: v1 signed apps (ECDSA P-256); 2: Secure "
                                              "Boot v2.")] = 2,
    scheme: Annotated[str | None, typer.Option(
        help="Secure Boot v2 scheme: rsa3072 (default), ecdsa256, ecdsa384.")] = None,
    force: Annotated[bool, typer.Option("--force",
                                        help="Overwrite an existing key file.")] = False,
) -> None:
    """Generate a signing key (KEEP IT SAFE: loss = no more updates; leak = forged firmware)."""
    with handle_errors():
        _check_version(version)
        if version == 1:
            if scheme not in (None, "ecdsa256"):
                fail(f"--scheme {scheme}: version 1 signs with ecdsa256 only", EXIT_BAD_INPUT)
            scheme = "ecdsa256"
        elif scheme is None:
            scheme = "rsa3072"
        elif scheme not in _V2_SCHEMES:
            fail(f"--scheme {scheme}: use one of {', '.join(_V2_SCHEMES)}", EXIT_BAD_INPUT)
        _check_output(out, "key file")
        if out.exists() and not force:
            fail(f"{out} already exists: refusing to overwrite a key (use --force if you "
                 "really mean to replace it)", EXIT_BAD_INPUT)
        key = k.generate_key(scheme)
        atomic_write(out, k.private_key_pem(key), mode=0o600)
        label = "v1 signed apps" if version == 1 else "Secure Boot v2"
        typer.echo(f"{scheme} private key ({label}) written to {out} "
                   f"(mode 0600); key digest {k.public_key_digest(key).hex()}")
        typer.echo("KEEP IT SAFE: without it no update can be signed for devices that "
                   "trust it.", err=True)


def digest(
    key: Annotated[Path, typer.Argument(help="Private or public key (PEM).")],
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Where to write the 32-byte digest.")],
) -> None:
    """Write the public key digest burnt into eFuse (as `espsecure digest-sbv2-public-key`)."""
    with handle_errors():
        pub = _load_public(key)
        value = k.public_key_digest(pub)
        _check_output(output, "digest file")
        if output.resolve() == key.resolve():
            fail("the digest output would overwrite the key file", EXIT_BAD_INPUT)
        atomic_write(output, value)
        typer.echo(f"public key digest of {key} ({k.scheme_of(pub)}) written to {output}: "
                   f"{value.hex()}")


def public(
    key: Annotated[Path, typer.Argument(help="Private key (PEM).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Public key file to write.")],
    version: Annotated[int, typer.Option("--version", "-v",
                                         help="2: PEM public key; 1: raw 64-byte X||Y "
                                              "(signature_verification_key.bin).")] = 2,
) -> None:
    """Extract the public key (as `espsecure extract-public-key`)."""
    with handle_errors():
        _check_version(version)
        pub = _load_public(key)
        data = k.v1_public_key_bytes(pub) if version == 1 else k.public_key_pem(pub)
        _check_output(output, "public key file")
        if output.exists() and os.path.samefile(output, key):
            fail("the public key output would overwrite the private key", EXIT_BAD_INPUT)
        atomic_write(output, data)
        typer.echo(f"public key of {key} written to {output}")


def register(app: typer.Typer) -> None:
    """Add ``generate``, ``digest`` and ``public`` to the ``keys`` group."""
    app.command("generate")(generate)
    app.command("digest")(digest)
    app.command("public")(public)
