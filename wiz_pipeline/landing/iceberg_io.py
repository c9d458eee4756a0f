"""pyiceberg's Arrow file IO, writing local metadata files as private as the data beside them.

pyiceberg writes a table's metadata (``*.metadata.json``, manifest lists, manifests) through pyarrow,
which creates files and folders with the process's umask: under umask 0 they would be world-readable,
and they hold every file's column bounds (user names, IPs). Here each local file is 0640 and each
folder it needs 0750, as ``landing.outputs`` makes the data files. Objects on S3 are unaffected (the
bucket is private; pyiceberg sets no ACL).
"""

from __future__ import annotations

import os
from pathlib import Path

from pyiceberg.io import OutputStream
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO

from wiz_pipeline.landing.outputs.local import FILE_MODE, make_private_dirs


class _PrivateFile(PyArrowFile):
    def create(self, overwrite: bool = False) -> OutputStream:
        if self._filesystem.type_name != "local":
            return super().create(overwrite=overwrite)
        make_private_dirs(Path(self._path).parent)
        # Created 0640 before pyarrow opens it (it keeps an existing file's mode): never, even for an
        # instant, a file others may open.
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(self._path, flags, FILE_MODE)
        except FileExistsError:
            raise FileExistsError(f"Cannot create file, already exists: {self.location}") from None
        try:
            os.fchmod(fd, FILE_MODE)  # os.open's mode is reduced by the umask
        finally:
            os.close(fd)
        return super().create(overwrite=True)


class PrivateFileIO(PyArrowFileIO):
    """``py-io-impl`` of every catalog the pipeline opens."""

    def new_output(self, location: str) -> PyArrowFile:
        file = super().new_output(location)
        private = _PrivateFile.__new__(_PrivateFile)
        private.__dict__.update(file.__dict__)
        return private
