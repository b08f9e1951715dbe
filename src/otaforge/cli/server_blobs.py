"""``otaforge server migrate-blobs --from STORE --to STORE``: copy the blob store."""

from __future__ import annotations

import argparse
import json


def migrate_blobs(args: argparse.Namespace) -> int:
    """Copy every blob from ``--from`` to ``--to`` (each SHA-256 checked); exit 1 when a
    source blob was corrupt (it is not copied)."""
    from pathlib import Path

    from otaforge.errors import InputError
    from otaforge.server.extras import require_server

    require_server("otaforge server migrate-blobs")
    from otaforge.server.blob_migrate import migrate
    from otaforge.server.blobs import open_blob_store

    specs = [s if s.startswith("s3://") or "://" in s else str(Path(s).resolve())
             for s in (args.from_, args.to)]
    if not specs[0].startswith("s3://") and "://" not in specs[0] \
            and not Path(specs[0]).is_dir():
        raise InputError(f"--from {args.from_}: no such directory")
    source, dest = (open_blob_store(spec, Path(spec)) for spec in specs)
    if source.url.rstrip("/") == dest.url.rstrip("/"):
        raise InputError(f"--from and --to name the same store ({source.url})")
    report = migrate(source, dest)
    if args.json:
        print(json.dumps({"from": source.url, "to": dest.url, "copied": report.copied,
                          "copied_bytes": report.copied_bytes, "skipped": report.skipped,
                          "corrupt": report.corrupt}, indent=2))
    else:
        print(f"copied {report.copied} blobs ({report.copied_bytes} bytes) from {source.url} "
              f"to {dest.url}; {report.skipped} already there")
        for sha256 in report.corrupt:
            print(f"  not copied: {sha256} does not hash to its name (corrupt source)")
    return 1 if report.corrupt else 0
