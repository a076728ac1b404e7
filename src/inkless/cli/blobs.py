"""``inkless blobs``: where the node keeps its blobs, and moving a blob folder into PostgreSQL."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json
from inkless.config import load_settings
from inkless.errors import ConfigurationError, IntegrityError

app = typer.Typer(help="Blob storage: documents, envelopes, fax images, receipts.", no_args_is_help=True)


@app.command("migrate")
def migrate(
    to: Annotated[str, typer.Option("--to", help="Where the blobs go: postgresql (the node's database).")],
    keep_files: Annotated[bool, typer.Option("--keep-files", help="Leave each file in place after its copy.")] = False,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move the blob folder into the node's PostgreSQL database, checking every hash; safe to run again.

    Each blob is copied, read back from the database and verified against its SHA-256 address before its
    file is removed. An interrupted run is resumed by running the command again. A file that does not
    match its address is not copied and stays; the command then exits non-zero naming it.
    """
    from inkless.blobs import LocalBlobStore
    from inkless.db.blob_store import DatabaseBlobStore, move_blob_folder

    if to != "postgresql":
        raise ConfigurationError(f"--to {to!r}: blobs can only be moved to postgresql")
    settings = load_settings(data)
    if settings.backend != "postgresql":
        raise ConfigurationError(
            "this node's database is SQLite: its blobs stay in the blob folder. Move the node to PostgreSQL "
            "first (database_url = postgresql+psycopg://…), then run this command"
        )
    if not settings.blobs_in_database:
        raise ConfigurationError(
            'blob_store = "files" keeps blobs in the folder: set blob_store = "auto" (or remove it) first'
        )
    with open_node(data) as node:
        assert isinstance(node.blobs, DatabaseBlobStore)
        folder = settings.blob_dir
        if folder.is_dir():
            result = move_blob_folder(LocalBlobStore(folder, node.box), node.blobs, keep_files=keep_files)
            if not keep_files:
                _remove_empty_folders(folder)
        else:
            from inkless.db.blob_store import BlobMove

            result = BlobMove(0, 0, (), 0, 0)
        total = node.blobs.count()
    report = {
        "moved": result.moved,
        "already_in_database": result.present,
        "corrupt": list(result.corrupt),
        "bytes_moved": result.bytes_moved,
        "files_removed": result.files_removed,
        "blobs_in_database": total,
        "folder": str(settings.blob_dir),
    }
    if as_json:
        print_json(report)
    else:
        typer.echo(
            f"moved {result.moved} blob(s) ({result.bytes_moved} bytes) into the database, "
            f"{result.present} were there already; {result.files_removed} file(s) removed; "
            f"{total} blob(s) in the database"
        )
    if result.corrupt:
        raise IntegrityError(
            f"{len(result.corrupt)} blob file(s) do not match their address and were not moved: "
            + ", ".join(result.corrupt)
        )


def _remove_empty_folders(folder: Path) -> None:
    """Remove the ``ab/cd`` folders (and ``tmp``) the move emptied, deepest first; the folder itself too if empty."""
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: a file that was not moved stays, with its folders
            path.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
