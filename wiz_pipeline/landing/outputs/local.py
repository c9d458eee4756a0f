"""A local directory: hidden temporary files, fsynced and renamed into place."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from wiz_pipeline.landing.outputs.base import (
    STALE_AFTER_SECONDS,
    UNKNOWN,
    Listed,
    Output,
    OutputError,
    Upload,
)

# Whatever the umask: the data is a security team's audit trail.
FILE_MODE = 0o640
DIR_MODE = 0o750


class _LocalUpload(Upload):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away
        self.file = os.fdopen(fd, "wb")

    def finish(self) -> int:
        self.file.flush()
        os.fsync(self.file.fileno())
        size = os.fstat(self.file.fileno()).st_size
        self.file.close()
        return size

    def read_back(self) -> BinaryIO:
        self.file.flush()
        return self.tmp.open("rb")

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


class LocalOutput(Output):
    def __init__(self, root: Path, setting: str = "WIZ_OUTPUT_URI") -> None:
        self.root = root
        self.uri = str(root)
        self.setting = setting

    def check(self) -> None:
        try:
            make_private_dirs(self.root)
        except OSError as exc:
            raise OutputError(
                f"{self.setting}={self.root}: can't create the directory ({exc.strerror})."
            ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OutputError(f"{self.setting}={self.root}: this user can't write to the directory.")

    def open(self, key: str) -> Upload:
        path = self.root / key
        make_private_dirs(path.parent)
        return _LocalUpload(path)

    def read(self, key: str) -> BinaryIO | None:
        try:
            return (self.root / key).open("rb")
        except FileNotFoundError:
            return None

    def publish(self, uploads: list[Upload]) -> None:
        directories: dict[Path, None] = {}
        for upload in uploads:
            assert isinstance(upload, _LocalUpload)
            os.replace(upload.tmp, upload.path)
            directories[upload.path.parent] = None
        for directory in directories:  # the renames themselves survive a crash
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def location(self, key: str) -> str:
        return str(self.root / key)

    def uri_of(self, key: str) -> str:
        return (self.root / key).as_uri()

    def sweep(self, dataset: str) -> None:
        folder = self.root / dataset
        if not folder.is_dir():
            return
        cutoff = time.time() - STALE_AFTER_SECONDS
        for leftover in folder.glob("**/.*.tmp-*"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def files(self, folders: list[str], *, stat: bool = True) -> dict[str, Listed]:
        found: dict[str, Listed] = {}
        pending = [folder.strip("/") for folder in folders]
        while pending:
            folder = pending.pop(0)
            prefix = f"{folder}/" if folder else ""
            try:
                with os.scandir(self.root / folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(f"{prefix}{entry.name}")
                        # Hidden names are temporary files not yet renamed into place.
                        elif entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                            continue
                        elif not stat:  # its name only: scandir tells a file without a call per file
                            found[f"{prefix}{entry.name}"] = UNKNOWN
                        else:
                            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                                info = entry.stat(follow_symlinks=False)
                                found[f"{prefix}{entry.name}"] = Listed(info.st_size, info.st_mtime)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return found

    def read_many(self, keys: list[str]) -> dict[str, bytes | None]:
        contents: dict[str, bytes | None] = {}
        for key in keys:
            try:
                contents[key] = (self.root / key).read_bytes()
            except FileNotFoundError:
                contents[key] = None
        return contents


def make_private_dirs(directory: Path) -> None:
    """``mkdir -p`` giving every directory it creates ``DIR_MODE``, whatever the umask."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it meanwhile
            path.mkdir(mode=DIR_MODE)
            os.chmod(path, DIR_MODE)
