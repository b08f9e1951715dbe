"""``otaforge image sign`` / ``image verify``: Secure Boot v2 and v1 signed-app signatures.

Output is interchangeable with ``espsecure sign-data`` / ``verify-signature``. The signed file
is written atomically: a failed or interrupted signing never leaves a half-written output.
Both commands are benchmarked against espsecure as whole processes (``bench/bench_cli.py``):
paths stay plain ``str`` (pathlib costs milliseconds of start-up) and the key code is imported
only once the options are known to be sound.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from otaforge.cli._common import EXIT_FAILED, fail, read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.crypto.keys import PublicKey

PathArg = str
T = TypeVar("T")


def _load_key(path: PathArg, loader: Callable[[bytes], T]) -> T:
    """``loader(bytes of path)``, with the key file's name in any error."""
    data = read_input(path, "key")
    try:
        return loader(data)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def _check_output(output: PathArg) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    if os.path.isdir(output):
        raise InputError(f"{output}: is a directory; give the signed image's file name with -o")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise InputError(f"{output}: folder {folder} does not exist (create it first)")


def _check_version(version: int) -> None:
    if version not in (1, 2):
        raise InputError(f"--version {version}: use 2 (Secure Boot v2) or 1 (v1 signed apps, "
                         "ESP32)")


def _sign_bytes(data: bytes, version: int, key_paths: Sequence[PathArg], append: bool) -> bytes:
    from otaforge.crypto import keys as k

    keys = [_load_key(p, k.load_private_key) for p in key_paths]
    if version == 1:
        from otaforge.crypto import sbv1

        if len(keys) != 1 or append:
            raise InputError("--version 1 signs with exactly one key and cannot --append")
        return sbv1.sign_v1(data, keys[0])
    from otaforge.crypto import sbv2

    if append:
        return sbv2.sign_v2(data, keys, append_to=data)
    _, existing = sbv2.split_signed(data)
    if existing:
        raise InputError(
            f"the input already carries {len(existing)} signature block(s): use --append to "
            "add a key, or sign the unsigned image"
        )
    return sbv2.sign_v2(data, keys)


def run_sign(image: PathArg, output: PathArg, key_paths: Sequence[PathArg], version: int = 2,
             append: bool = False) -> str:
    """Sign ``image`` into ``output`` (atomically) and return the summary line.

    Raises:
        InputError: bad key, version, or input (nothing is written then).
    """
    from otaforge.fsutil import atomic_write

    _check_version(version)
    if not key_paths:
        raise InputError("give the signing key with --keyfile KEY.pem")
    _check_output(output)
    data = read_input(image, "image")
    if not data:
        raise InputError(f"{image} is empty: nothing to sign")
    if any(os.path.realpath(p) == os.path.realpath(output) for p in key_paths):
        raise InputError("the output would overwrite a key file")
    signed = _sign_bytes(data, version, key_paths, append)
    atomic_write(output, signed)
    if version == 1:
        return (f"signed {len(data)} bytes with a v1 ECDSA P-256 signature -> {output} "
                f"({len(signed)} bytes)")
    from otaforge.crypto import sbv2

    blocks = sbv2.split_signed(signed)[1]
    listed = ", ".join(f"{i}: {b.scheme} key {sbv2.block_key_digest(b).hex()[:16]}..."
                       for i, b in enumerate(blocks))
    return (f"signed {len(signed) - sbv2.SECTOR_SIZE} bytes -> {output} ({len(signed)} bytes);"
            f" signature sector has {len(blocks)} block(s): {listed}")


def _load_verify_keys(paths: Sequence[PathArg], version: int) -> list[PublicKey]:
    from otaforge.crypto import keys as k

    if version == 1:
        return [_load_key(p, k.load_v1_public_key) for p in paths]
    return [_load_key(p, k.load_public_key) for p in paths]


def _read_digests(paths: Sequence[PathArg]) -> list[bytes]:
    digests = [read_input(p, "key digest") for p in paths]
    for p, d in zip(paths, digests, strict=True):
        if len(d) not in (16, 32):
            raise InputError(f"{p}: a key digest is 32 bytes (16 on ESP32-C2), not {len(d)}")
    return digests


def verify_report(image: PathArg, key_paths: Sequence[PathArg],
                  digest_paths: Sequence[PathArg], revoked: Sequence[int],
                  version: int = 2) -> dict[str, Any]:
    """Verify ``image``; return what verified (the ``--json`` report).

    Raises:
        SignatureInvalid: invalid, with the reason (exit 1).
        InputError: bad options or key files (exit 2).
    """
    _check_version(version)
    if not key_paths and not digest_paths:
        raise InputError("give at least one trusted --keyfile (or --digest for version 2)")
    data = read_input(image, "image")
    if version == 1:
        from otaforge.crypto import sbv1

        if digest_paths:
            raise InputError("--digest applies to Secure Boot v2 only")
        v1 = sbv1.verify_v1(data, keys=_load_verify_keys(key_paths, 1))
        return {"image": image, "valid": True, "version": 1, "scheme": "ecdsa256",
                "key_index": v1.key_index, "signed_len": v1.signed_len}
    from otaforge.crypto import sbv2

    if key_paths:
        v2 = sbv2.verify_v2(data, keys=_load_verify_keys(key_paths, 2), revoked=set(revoked))
    else:
        v2 = sbv2.verify_v2(data, digests=_read_digests(digest_paths), revoked=set(revoked))
    return {"image": image, "valid": True, "version": 2, "scheme": v2.scheme,
            "block_index": v2.block_index, "key_index": v2.key_index,
            "block_count": v2.block_count, "signed_len": v2.signed_len}


def _verify_line(report: dict[str, Any]) -> str:
    if report["version"] == 1:
        return (f"{report['image']}: valid v1 signature, key index {report['key_index']} "
                f"({report['signed_len']} bytes signed)")
    return (f"{report['image']}: valid Secure Boot v2 signature ({report['scheme']}): block "
            f"{report['block_index']} verified with key index {report['key_index']}; "
            f"{report['block_count']} block(s), {report['signed_len']} bytes signed")


def sign(args: argparse.Namespace) -> int:
    """``image sign IMAGE -o OUT --keyfile KEY [--version N] [--append]``."""
    sys.stdout.write(run_sign(args.image, args.output, args.keyfile, args.version,
                              args.append) + "\n")
    return 0


def verify(args: argparse.Namespace) -> int:
    """``image verify IMAGE --keyfile KEY | --digest FILE [--revoke N] [--json]``."""
    from otaforge.errors import VerificationError

    try:
        report = verify_report(args.image, args.keyfile, args.digest, args.revoke,
                               args.version)
    except VerificationError as err:
        if not args.json:
            raise
        import json

        sys.stdout.write(json.dumps({"image": args.image, "valid": False,
                                     "reason": str(err), "code": str(err.code)}) + "\n")
        fail(str(err), EXIT_FAILED)
    if args.json:
        import json

        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(_verify_line(report) + "\n")
    return 0
