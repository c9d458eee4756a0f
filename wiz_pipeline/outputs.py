"""Where the datasets go (``WIZ_OUTPUT_URI``): a local directory, or an S3 (compatible) bucket.

Both kinds give the same three guarantees, each in its own way (the README's "Output" says it too):

- A reader never sees part of a file. Locally, a file is written under a hidden temporary name
  (``.<name>.tmp-<random>``, which no reader picks up), fsynced, and renamed over its final name.
  On S3, where nothing can be renamed, a file is written straight to its final key as a multipart
  upload: parts are sent as rows arrive (memory stays bounded), and S3 shows the object only when
  the upload is completed, in one step that replaces the previous object whole.
- A window that fails, or whose process is killed, leaves the window's previous file as it was (or
  nothing). Locally the temporary file is deleted (or, after a kill, left under its hidden name); on
  S3 the upload is aborted (or, after a kill, left incomplete, which S3 never shows).
- Leftovers of dead runs are cleaned: each run first deletes the temporary files, and aborts the
  incomplete uploads, under its dataset that are older than any live run can be.

Credentials and the endpoint are left to the AWS SDK (botocore, through s3fs): the standard
``AWS_*`` variables, or an instance/pod role. They never pass through this module's messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from wiz_pipeline.wiz.errors import WizConfigError
from wiz_pipeline.wiz.urls import check_url

log = logging.getLogger(__name__)

# Temporary files and uploads this old were left by a run that died (killed, out of memory, a
# reboot): runs are failed after 4 hours (deploy/dagster.yaml), so no live writer owns one.
STALE_AFTER_SECONDS = 6 * 3600

# Whatever the umask: the data is a security team's audit trail.
FILE_MODE = 0o640
DIR_MODE = 0o750

# Bytes sent per multipart part (S3's minimum is 5 MiB): what a writer holds in memory per file.
S3_PART_BYTES = 5 * 2**20

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class OutputError(WizConfigError):
    """The output location can't be used; the message names the variable to fix and never a secret."""


class Upload(ABC):
    """One file being written: ``file`` takes the bytes; ``finish`` stores them all (not yet visible)
    and returns the size; ``Output.publish`` makes it visible; ``abort`` drops it."""

    file: BinaryIO

    @abstractmethod
    def finish(self) -> int: ...

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


def parse_output_uri(name: str, text: str) -> str:
    """``WIZ_OUTPUT_URI`` normalised: an absolute directory, or ``s3://bucket[/prefix]``."""
    text = text.strip()
    if not text:
        raise OutputError(f"{name} is empty: set it to a directory, such as data, or s3://bucket/prefix.")
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if "@" in bucket or "?" in text or "#" in text:
            # Never echo it: user info or query parameters may carry a key.
            raise OutputError(
                f"{name} must be s3://bucket/prefix with no user, password, query or fragment; "
                "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a role."
            )
        if not bucket:
            raise OutputError(f"{name}={text!r} names no bucket: write s3://bucket/prefix.")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise OutputError(
                f"{name}={text!r}: {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, "
                "digits, dots and hyphens)."
            )
        parts = prefix.strip("/").split("/") if prefix.strip("/") else []
        if any(part in ("", ".", "..") for part in parts):
            raise OutputError(f"{name}={text!r}: the prefix has an empty, '.' or '..' segment.")
        return "/".join([f"s3://{bucket}", *parts])
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    elif "://" in text:
        raise OutputError(
            f"{name}={text.split('://')[0]}://…: unsupported scheme; use a directory (a path or "
            "file:///path) or s3://bucket/prefix (S3, MinIO, Ceph, R2: see AWS_ENDPOINT_URL)."
        )
    # Resolved once, here, so that every process of a deployment writes to the same place.
    return str(Path(text).expanduser().absolute())


def open_output(uri: str | Path | Output) -> Output:
    if isinstance(uri, Output):
        return uri
    uri = str(uri)
    if uri.startswith("s3://"):
        return S3Output(uri)
    return LocalOutput(Path(uri))


# -- a local directory --------------------------------------------------------------------------


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

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


class LocalOutput(Output):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def check(self) -> None:
        try:
            _make_dirs(self.root)
        except OSError as exc:
            raise OutputError(
                f"WIZ_OUTPUT_URI={self.root}: can't create the directory ({exc.strerror})."
            ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OutputError(f"WIZ_OUTPUT_URI={self.root}: this user can't write to the directory.")

    def open(self, key: str) -> Upload:
        path = self.root / key
        _make_dirs(path.parent)
        return _LocalUpload(path)

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
        for leftover in folder.glob("date=*/.*.tmp-*"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` giving every directory it creates ``DIR_MODE``, whatever the umask."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it meanwhile
            path.mkdir(mode=DIR_MODE)
            os.chmod(path, DIR_MODE)


# -- S3 and S3-compatible stores ----------------------------------------------------------------


class _S3Upload(Upload):
    def __init__(self, fs: Any, path: str) -> None:
        from s3fs.core import S3File

        # autocommit=False: closing the file sends its last part but completes nothing; only
        # ``publish`` does, so no exception, garbage collection or kill can show a partial object.
        # No ACL is sent: objects get the bucket's own (private) ownership.
        self.file = S3File(fs, path, "wb", block_size=S3_PART_BYTES, autocommit=False)
        self.published = False

    def finish(self) -> int:
        self.file.close()
        return self.file.tell()

    def abort(self) -> None:
        if self.published:
            return
        try:
            self.file.discard()  # AbortMultipartUpload, if one was started
        except Exception as exc:
            # The window fails anyway; a later run's sweep aborts the upload.
            log.warning(
                "Could not abort the upload of %s (%s); a later run cleans it up.", self.file.path, exc
            )
        finally:
            self.file.closed = True


class S3Output(Output):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.bucket, _, self.prefix = uri.removeprefix("s3://").partition("/")
        self._fs: Any = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = _s3_filesystem(attempts=5)
        return self._fs

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def check(self) -> None:
        """List the dataset's uploads (what the sweep needs) and start and abort one upload (what
        writing needs): a wrong endpoint, credential or bucket, or missing permissions, fail here,
        before any Wiz request, and leave nothing behind."""
        fs = _s3_filesystem(attempts=2)
        try:
            fs.call_s3("list_multipart_uploads", Bucket=self.bucket, Prefix=self._key(""), MaxUploads=1)
            probe = self._key(f".wiz-pipeline-check-{uuid.uuid4().hex[:12]}")
            started = fs.call_s3("create_multipart_upload", Bucket=self.bucket, Key=probe)
            fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=probe, UploadId=started["UploadId"])
        except Exception as exc:
            raise OutputError(_explain(exc, self.uri, self.bucket)) from None

    def open(self, key: str) -> Upload:
        return _S3Upload(self.fs, f"{self.bucket}/{self._key(key)}")

    def publish(self, uploads: list[Upload]) -> None:
        for upload in uploads:
            assert isinstance(upload, _S3Upload)
            upload.file.commit()  # CompleteMultipartUpload: the object appears whole, in one step
            upload.published = True

    def location(self, key: str) -> str:
        return self.uri_of(key)

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def sweep(self, dataset: str) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=STALE_AFTER_SECONDS)
        for upload in stale_uploads(self._uploads(self._key(f"{dataset}/")), cutoff):
            with contextlib.suppress(Exception):  # already gone, or no permission: try next run
                self.fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=self.bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
                log.info("Aborted the upload of s3://%s/%s a dead run left.", self.bucket, upload["Key"])

    def _uploads(self, prefix: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_multipart_uploads", Bucket=self.bucket, Prefix=prefix, **markers)
            uploads += page.get("Uploads") or []
            if not page.get("IsTruncated"):
                return uploads
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}


def stale_uploads(uploads: list[dict[str, Any]], cutoff: datetime) -> list[dict[str, Any]]:
    """The incomplete uploads started before ``cutoff``: no live run owns them."""
    return [u for u in uploads if u["Initiated"] < cutoff]


def _s3_filesystem(*, attempts: int) -> Any:
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    if endpoint:
        check_url(endpoint, name="AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    config: dict[str, Any] = {
        "connect_timeout": 10,
        "read_timeout": 60,
        "retries": {"max_attempts": attempts, "mode": "standard"},
    }
    if endpoint:
        # MinIO, Ceph and most self-hosted stores address buckets by path, not by host name.
        config["s3"] = {"addressing_style": "path"}
    return s3fs.S3FileSystem(
        endpoint_url=endpoint,
        client_kwargs={"region_name": region} if region else {},
        config_kwargs=config,
        skip_instance_cache=True,
        use_listings_cache=False,
    )


_CREDENTIALS = {
    "InvalidAccessKeyId": "S3 does not know the access key: check AWS_ACCESS_KEY_ID (and AWS_ENDPOINT_URL).",
    "SignatureDoesNotMatch": "S3 rejected the request signature: check AWS_SECRET_ACCESS_KEY.",
    "InvalidToken": "S3 rejected the session token: check AWS_SESSION_TOKEN.",
    "ExpiredToken": "the session token has expired: renew AWS_SESSION_TOKEN.",
    "TokenRefreshRequired": "the session token has expired: renew AWS_SESSION_TOKEN.",
}


def _explain(exc: BaseException, uri: str, bucket: str) -> str:
    """One line naming the variable at fault; built from error codes, never from the request."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(exc, WizConfigError):
        return str(exc)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    where = f"the S3 endpoint {endpoint} (AWS_ENDPOINT_URL)" if endpoint else "S3 (AWS_REGION)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"WIZ_OUTPUT_URI={uri}: no AWS credentials found: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or give the process an IAM role)."
        )
    if isinstance(exc, NoRegionError):
        return f"WIZ_OUTPUT_URI={uri}: no region: set AWS_REGION to the bucket's region."
    if isinstance(exc, BotoCoreError | OSError) and _code(exc) is None:
        return (
            f"WIZ_OUTPUT_URI={uri}: cannot reach {where} ({type(exc).__name__}): check AWS_ENDPOINT_URL "
            "and the network."
        )
    code = _code(exc)
    if code in _CREDENTIALS:
        return f"WIZ_OUTPUT_URI={uri}: {_CREDENTIALS[code]}"
    if code == "NoSuchBucket":
        return (
            f"WIZ_OUTPUT_URI={uri}: bucket {bucket!r} does not exist at {where}: create it (private) or "
            "fix WIZ_OUTPUT_URI."
        )
    if code in ("AccessDenied", "AllAccessDisabled", "403"):
        return (
            f"WIZ_OUTPUT_URI={uri}: access denied: the credentials (AWS_ACCESS_KEY_ID or the role) need "
            "s3:PutObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on it."
        )
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
        return f"WIZ_OUTPUT_URI={uri}: the bucket is in another region: set AWS_REGION to its region."
    return f"WIZ_OUTPUT_URI={uri}: S3 refused the request ({code or type(exc).__name__}) at {where}."


def _code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError, also when s3fs wrapped it in an OSError."""
    for error in (exc, exc.__cause__, exc.__context__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code") or "") or None
    return None
