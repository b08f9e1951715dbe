"""``otaforge keys``: generate signing keys, write the eFuse key digest, extract public keys.

Key files are interchangeable with ``espsecure generate-signing-key``. A private key is written
atomically with mode 0600 and is never printed. ``keys generate`` is benchmarked against
espsecure as a whole process: paths stay ``str`` and only the key code is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from otaforge.cli._common import read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.crypto.keys import PublicKey


def _key_path(args: argparse.Namespace) -> str:
    """KEY given as the argument or as espsecure's ``--keyfile`` (exactly one of them)."""
    if args.key is not None and args.keyfile is not None:
        raise InputError(f"give the key once: {args.key} or --keyfile {args.keyfile}")
    path = args.key if args.key is not None else args.keyfile
    if path is None:
        raise InputError("give the key file: KEY or --keyfile KEY")
    return str(path)


def _load_public(path: str) -> PublicKey:
    from otaforge.crypto import keys as k

    try:
        return k.load_public_key(read_input(path, "key"))
    except InputError as err:
        if str(err).startswith(f"{path}:"):
            raise
        raise InputError(f"{path}: {err}") from None


def _check_output(out: str, what: str) -> None:
    if os.path.isdir(out):
        raise InputError(f"{out}: is a directory, expected the {what} to write")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise InputError(f"{out}: folder {folder} does not exist (create it first)")


def _scheme(version: int, scheme: str | None) -> str:
    if version == 1:
        if scheme not in (None, "ecdsa256"):
            raise InputError(f"--scheme {scheme}: version 1 signs with ecdsa256 only")
        return "ecdsa256"
    return scheme or "rsa3072"


def generate(args: argparse.Namespace) -> int:
    """``keys generate KEYFILE [--version N] [--scheme S] [--force] [--json]``."""
    out: str = args.keyfile
    scheme = _scheme(args.version, args.scheme)
    _check_output(out, "key file")
    if os.path.exists(out) and not args.force:
        raise InputError(f"{out} already exists: refusing to overwrite a key (use --force if "
                         "you really mean to replace it)")
    from otaforge.crypto import keys as k
    from otaforge.fsutil import atomic_write

    key = k.generate_key(scheme)
    atomic_write(out, k.private_key_pem(key), mode=0o600)
    digest = k.public_key_digest(key).hex()
    label = "v1 signed apps" if args.version == 1 else "Secure Boot v2"
    if args.json:
        import json

        sys.stdout.write(json.dumps({"keyfile": out, "scheme": scheme, "version": args.version,
                                     "mode": "0600", "key_digest": digest}) + "\n")
    else:
        sys.stdout.write(f"{scheme} private key ({label}) written to {out} (mode 0600); "
                         f"key digest {digest}\n")
    sys.stderr.write("KEEP IT SAFE: without it no update can be signed for devices that "
                     "trust it.\n")
    return 0


def digest(args: argparse.Namespace) -> int:
    """``keys digest KEY -o OUT``: the 32-byte digest burned into eFuse."""
    from otaforge.crypto import keys as k
    from otaforge.fsutil import atomic_write

    key = _key_path(args)
    pub = _load_public(key)
    value = k.public_key_digest(pub)
    _check_output(args.output, "digest file")
    if os.path.realpath(args.output) == os.path.realpath(key):
        raise InputError("the digest output would overwrite the key file")
    atomic_write(args.output, value)
    sys.stdout.write(f"public key digest of {key} ({k.scheme_of(pub)}) written to "
                     f"{args.output}: {value.hex()}\n")
    return 0


def public(args: argparse.Namespace) -> int:
    """``keys public KEY -o OUT [--version N]``."""
    from otaforge.crypto import keys as k
    from otaforge.fsutil import atomic_write

    key = _key_path(args)
    pub = _load_public(key)
    data = (k.v1_public_key_bytes(pub) if args.version == 1
            else k.public_key_pem(pub))
    _check_output(args.output, "public key file")
    if os.path.exists(args.output) and os.path.samefile(args.output, key):
        raise InputError("the public key output would overwrite the private key")
    atomic_write(args.output, data)
    sys.stdout.write(f"public key of {key} written to {args.output}\n")
    return 0
