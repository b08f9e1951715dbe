"""Fast path of ``otaforge image sign`` (argparse, no typer): see :mod:`otaforge.cli.image_sign`.

For ``cli/main.py``'s ``FAST_PATHS[("image", "sign")]``.
"""

from otaforge.cli.image_sign import fast_sign_main as fast_main

__all__ = ["fast_main"]

if __name__ == "__main__":
    import sys

    raise SystemExit(fast_main(sys.argv[1:]))
