"""The two things every output offers: an ``Upload`` (one file being written) and an ``Output``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import BinaryIO, NamedTuple

from wiz_pipeline.core.errors import WizConfigError

# Temporary files and uploads this old were left by a run that died (killed, out of memory, a
# reboot): runs are failed after 4 hours (deploy/dagster.yaml), so no live writer owns one.
STALE_AFTER_SECONDS = 6 * 3600


class OutputError(WizConfigError):
    """The output location can't be used; the message names the variable to fix and never a secret."""


class Listed(NamedTuple):
    """A published file as ``Output.files`` lists it."""

    size: int  # bytes; -1 when unknown (listed without ``stat``)
    # When it was last written, in POSIX seconds (None when unknown): a float costs a listing of a
    # year of windows nothing, a datetime a second.
    mtime: float | None

    @property
    def modified(self) -> datetime | None:
        """When it was last written (UTC)."""
        return None if self.mtime is None else datetime.fromtimestamp(self.mtime, UTC)


# What a listing without ``stat`` knows of a file besides its name, where more would cost a call per file.
UNKNOWN = Listed(-1, None)


class Upload(ABC):
    """One file being written: ``file`` takes the bytes; ``finish`` stores them all (not yet visible)
    and returns the size; ``Output.publish`` makes it visible; ``abort`` drops it. ``read_back``
    opens what was written so far, for reading (seekable), before ``finish``."""

    file: BinaryIO

    @abstractmethod
    def finish(self) -> int: ...

    @abstractmethod
    def read_back(self) -> BinaryIO: ...

    @abstractmethod
    def abort(self) -> None: ...


class Output(ABC):
    uri: str  # WIZ_OUTPUT_URI (or WIZ_OCSF_URI), normalised
    setting: str = "WIZ_OUTPUT_URI"  # the variable its messages name

    @abstractmethod
    def check(self) -> None:
        """Fail at once, naming the variable at fault, if files can't be written here."""

    @abstractmethod
    def open(self, key: str) -> Upload: ...

    @abstractmethod
    def read(self, key: str) -> BinaryIO | None:
        """The file now at ``key``, open for reading (seekable), or None if there is none."""

    @abstractmethod
    def publish(self, uploads: list[Upload]) -> None:
        """Make finished uploads visible, in order, each in one step."""

    @abstractmethod
    def location(self, key: str) -> str:
        """Where a person finds the file: a path, or an s3:// URI."""

    @abstractmethod
    def uri_of(self, key: str) -> str: ...

    @abstractmethod
    def sweep(self, dataset: str) -> None:
        """Drop what dead runs left under one dataset (see ``STALE_AFTER_SECONDS``)."""

    @abstractmethod
    def files(self, folders: list[str], *, stat: bool = True) -> dict[str, Listed]:
        """Every published file under these folders, at any depth (keys, as ``open`` takes them), with
        its size and when it was last written: one listing per folder (on S3, a paginated
        ListObjectsV2, several folders at a time), never a request per file. Temporary files and
        incomplete uploads are not listed. ``stat=False``: a file may be ``UNKNOWN`` but for its name
        where more would cost a call per file (locally)."""

    @abstractmethod
    def read_many(self, keys: list[str]) -> dict[str, bytes | None]:
        """The contents of many small files (None for one that isn't there), read concurrently where
        that helps (S3)."""
