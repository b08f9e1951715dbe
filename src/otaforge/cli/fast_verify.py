"""Fast path of ``otaforge image verify`` (argparse, no typer): see
:mod:`otaforge.cli.image_sign`.

For ``cli/main.py``'s ``FAST_PATHS[("image", "verify")]``.
"""

from otaforge.cli.image_sign import fast_verify_main as fast_main

__all__ = ["fast_main"]

if __name__ == "__main__":
    import sys

    raise SystemExit(fast_main(sys.argv[1:]))
