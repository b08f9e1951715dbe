"""``otaforge image sign`` / ``image verify``: Secure Boot v2 and v1 signed-app signatures.

Output is interchangeable with ``espsecure sign-data`` / ``verify-signature``. The signed file
is written atomically: a failed or interrupted signing never leaves a half-written output.

Both commands are benchmarked against espsecure as whole processes (``bench/bench_signing.py``),
so besides the typer commands (:func:`register`) there are argparse fast paths
(:func:`fast_sign_main`, :func:`fast_verify_main`) that share :func:`run_sign` /
:func:`run_verify` and import neither typer nor rich.
"""

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, Union

from otaforge.cli._common import EXIT_BAD_INPUT, fail, handle_errors, read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    import argparse

    import typer

    from otaforge.crypto.keys import PublicKey

# plain ``str`` paths on the fast path (pathlib costs ~7 ms of start-up); typer passes Path
PathArg = Union[str, "os.PathLike[str]"]
T = TypeVar("T")
_KEY_HELP = "Private key PEM (repeat for up to 3 keys, one signature block each)."
_VERIFY_KEY_HELP = "Trusted key: private or public PEM (v1 also raw 64 bytes); repeatable."
_DIGEST_HELP = "Trusted eFuse key digest file (32 bytes), instead of keys; repeatable."


def _load_key(path: PathArg, loader: "Callable[[bytes], T]") -> "T":
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
        fail(f"--version {version}: use 2 (Secure Boot v2) or 1 (v1 signed apps, ESP32)",
             EXIT_BAD_INPUT)


def _sign_bytes(data: bytes, version: int, key_paths: Sequence[PathArg], append: bool) -> bytes:
    from otaforge.crypto import keys as k
    from otaforge.crypto import sbv1, sbv2

    keys = [_load_key(p, k.load_private_key) for p in key_paths]
    if version == 1:
        if len(keys) != 1 or append:
            raise InputError("--version 1 signs with exactly one key and cannot --append")
        return sbv1.sign_v1(data, keys[0])
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
        raise InputError("give the signing key with --key KEY.pem")
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


def _load_verify_keys(paths: Sequence[PathArg], version: int) -> list["PublicKey"]:
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


def run_verify(image: PathArg, key_paths: Sequence[PathArg], digest_paths: Sequence[PathArg],
               revoked: list[int], version: int = 2) -> str:
    """Verify ``image``; return the success line.

    Raises:
        SignatureInvalid: invalid, with the reason (exit 1).
        InputError: bad options or key files (exit 2).
    """
    _check_version(version)
    if not key_paths and not digest_paths:
        raise InputError("give at least one trusted --key (or --digest for version 2)")
    data = read_input(image, "image")
    if version == 1:
        from otaforge.crypto import sbv1

        if digest_paths:
            raise InputError("--digest applies to Secure Boot v2 only")
        result = sbv1.verify_v1(data, keys=_load_verify_keys(key_paths, 1))
        return (f"{image}: valid v1 signature, key index {result.key_index} "
                f"({result.signed_len} bytes signed)")
    from otaforge.crypto import sbv2

    if key_paths:
        result = sbv2.verify_v2(data, keys=_load_verify_keys(key_paths, 2), revoked=set(revoked))
    else:
        result = sbv2.verify_v2(data, digests=_read_digests(digest_paths), revoked=set(revoked))
    return (f"{image}: valid Secure Boot v2 signature ({result.scheme}): block "
            f"{result.block_index} verified with key index {result.key_index}; "
            f"{result.block_count} block(s), {result.signed_len} bytes signed")


# --- argparse fast paths (no typer/rich) ---------------------------------------------------


def _version_arg(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--version", "-v", type=int, default=2,
                        help="2: Secure Boot v2 (default); 1: v1 signed apps (ESP32)")


def _run_fast(action: str, argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"otaforge image {action}")
    _version_arg(parser)
    if action == "sign":
        parser.add_argument("image", type=str, help="image to sign")
        parser.add_argument("--output", "-o", type=str, required=True, help="signed image")
        parser.add_argument("--key", "--keyfile", "-k", dest="key", type=str, action="append",
                            required=True,
                            help=_KEY_HELP)
        parser.add_argument("--append", action="store_true",
                            help="keep the input's signature blocks and add these keys' blocks")
    else:
        parser.add_argument("image", type=str, help="signed image")
        parser.add_argument("--key", "--keyfile", "-k", dest="key", type=str, action="append",
                            default=[],
                            help=_VERIFY_KEY_HELP)
        parser.add_argument("--digest", type=str, action="append", default=[],
                            help=_DIGEST_HELP)
        parser.add_argument("--revoked", type=int, action="append", default=[],
                            help="index of a revoked key/digest (repeatable)")
    args = parser.parse_args(argv)
    try:
        with handle_errors():
            if action == "sign":
                line = run_sign(args.image, args.output, args.key, args.version, args.append)
            else:
                line = run_verify(args.image, args.key, args.digest, args.revoked, args.version)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    sys.stdout.write(line + "\n")
    return 0


def fast_sign_main(argv: list[str]) -> int:
    """``otaforge image sign`` without typer: returns the exit code."""
    return _run_fast("sign", argv)


def fast_verify_main(argv: list[str]) -> int:
    """``otaforge image verify`` without typer: returns the exit code."""
    return _run_fast("verify", argv)


# --- typer commands ----------------------------------------------------------------------


def register(app: "typer.Typer") -> None:
    """Add ``sign`` and ``verify`` to the ``image`` group."""
    from pathlib import Path
    from typing import Annotated

    import typer

    def sign(
        image: Annotated[Path, typer.Argument(help="Image to sign.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Signed image to write.")],
        key: Annotated[list[Path], typer.Option("--key", "--keyfile", "-k", help=_KEY_HELP)],
        version: Annotated[int, typer.Option(
            "--version", "-v", help="2: Secure Boot v2; 1: v1 signed apps (ESP32).")] = 2,
        append: Annotated[bool, typer.Option(
            "--append", help="Keep the input's signature blocks and add these keys' blocks.",
        )] = False,
    ) -> None:
        """Sign an app image (same bytes as `espsecure sign-data`)."""
        with handle_errors():
            typer.echo(run_sign(image, output, key, version, append))

    def verify(
        image: Annotated[Path, typer.Argument(help="Signed image.")],
        key: Annotated[list[Path] | None, typer.Option("--key", "--keyfile", "-k",
                                                       help=_VERIFY_KEY_HELP)] = None,
        digest: Annotated[list[Path] | None, typer.Option("--digest", help=_DIGEST_HELP)] = None,
        revoked: Annotated[list[int] | None, typer.Option(
            "--revoked", help="Index of a revoked key/digest (repeatable).")] = None,
        version: Annotated[int, typer.Option(
            "--version", "-v", help="2: Secure Boot v2; 1: v1 signed apps (ESP32).")] = 2,
    ) -> None:
        """Verify a signed image: exit 0 valid, 1 invalid (with the reason)."""
        with handle_errors():
            typer.echo(run_verify(image, key or [], digest or [], revoked or [], version))

    app.command("sign")(sign)
    app.command("verify")(verify)
