"""The two things every output offers: an ``Upload`` (one file being written) and an ``Output``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import BinaryIO

from wiz_pipeline.core.errors import WizConfigError

# Temporary files and uploads this old were left by a run that died (killed, out of memory, a
# reboot): runs are failed after 4 hours (deploy/dagster.yaml), so no live writer owns one.
STALE_AFTER_SECONDS = 6 * 3600


class OutputError(WizConfigError):
    """The output location can't be used; the message names the variable to fix and never a secret."""


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
    uri: str  # WIZ_OUTPUT_URI, normalised

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
    def listing(self, folder: str) -> list[tuple[str, datetime]]:
        """Every visible file under ``folder`` (keys, as ``open`` takes them) and when it was last
        written (UTC). Temporary files and incomplete uploads are not listed."""

    @abstractmethod
    def sweep(self, dataset: str) -> None:
        """Drop what dead runs left under one dataset (see ``STALE_AFTER_SECONDS``)."""

    @abstractmethod
    def sizes(self, folders: list[str], *, stat: bool = True) -> dict[str, int]:
        """The published files under these folders (keys relative to the root) and their sizes: one
        listing per folder, never a request per file. ``stat=False``: sizes may be -1 (unknown) where
        they would cost a call per file (locally)."""

    @abstractmethod
    def read_many(self, keys: list[str]) -> dict[str, bytes | None]:
        """The contents of many small files (None for one that isn't there), read concurrently where
        that helps (S3)."""
