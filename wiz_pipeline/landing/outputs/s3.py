"""S3 and S3-compatible stores, through s3fs: multipart uploads completed on publish, aborted on
failure, and those of dead runs aborted by the next run."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from wiz_pipeline.core.errors import WizConfigError
from wiz_pipeline.core.urls import check_url
from wiz_pipeline.landing.outputs.base import STALE_AFTER_SECONDS, Listed, Output, OutputError, Upload

log = logging.getLogger(__name__)

# Folders listed at once (each a paginated ListObjectsV2 of up to 1,000 keys a page): a year of
# one-minute windows is 365 folders of 2,880 keys.
LIST_CONCURRENCY = 16

# Bytes sent per multipart part (S3's minimum is 5 MiB), as soon as a file has that many more.
S3_PART_BYTES = 5 * 2**20


class _PartSpool(io.RawIOBase):
    """What the Parquet writer writes to: bytes go to an unlinked temporary file (mode 0600, gone
    with the process however it ends), and each part's worth goes on to S3 as soon as it is there.
    A run keeps a window's file until its whole span is fetched, so holding its bytes in memory would
    cost up to a part per window of the run. The whole file stays on disk until the upload ends, so
    that it can be read back (a finished window reopened)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.size = 0
        self.sent = 0  # bytes passed on to the S3 file
        self.parts_sent = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = self.spool.write(data)
        self.size += written
        whole = (self.size - self.sent) // S3_PART_BYTES * S3_PART_BYTES
        if whole:
            # Parts of exactly S3_PART_BYTES (R2 wants every part but the last the same size): each
            # fills the S3 file's block, which sends it as one part at once.
            for _ in range(whole // S3_PART_BYTES):
                self.target.write(self._read(self.sent, S3_PART_BYTES))
                self.sent += S3_PART_BYTES
            self.parts_sent = True
        return written

    def tell(self) -> int:
        return self.size

    def send(self) -> None:
        """Pass the rest to the S3 file, to be sent as the last part when it closes."""
        self.target.write(self.waiting())
        self.sent = self.size

    def waiting(self) -> bytes:
        return self._read(self.sent, self.size - self.sent)

    def _read(self, start: int, length: int) -> bytes:
        self.spool.flush()
        return os.pread(self.spool.fileno(), length, start)

    def read_back(self) -> BinaryIO:
        self.spool.flush()
        return io.BufferedReader(_Reading(self.spool.fileno(), self.size))

    def close(self) -> None:
        self.spool.close()
        super().close()


class _Reading(io.RawIOBase):
    """The spool read from its start by ``pread``, leaving the writer's own position alone."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size, self.at = fd, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = os.pread(self.fd, min(len(buffer), max(0, self.size - self.at)), self.at)
        buffer[: len(data)] = data
        self.at += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.at, io.SEEK_END: self.size}[whence]
        self.at = base + offset
        return self.at

    def tell(self) -> int:
        return self.at


class _S3Upload(Upload):
    """A multipart upload once a part's worth is written; a file smaller than one part (most windows,
    every manifest) goes in one PutObject on ``publish`` instead: one request rather than three, and
    nothing at all on S3 before then. No ACL is ever sent: objects get the bucket's own (private)
    ownership."""

    def __init__(self, fs: Any, bucket: str, key: str) -> None:
        from s3fs.core import S3File

        self.fs, self.bucket, self.key = fs, bucket, key
        # autocommit=False: closing the file sends its last part but completes nothing; only
        # ``publish`` does, so no exception, garbage collection or kill can show a partial object.
        self.target = S3File(fs, f"{bucket}/{key}", "wb", block_size=S3_PART_BYTES, autocommit=False)
        self.file = _PartSpool(self.target)
        self.published = False

    def finish(self) -> int:
        if self.file.parts_sent:
            self.file.send()
            self.target.close()  # sends the last part
            self.file.close()
        else:
            self.target.closed = True  # never started: nothing to send, complete or abort
        return self.file.size

    def read_back(self) -> BinaryIO:
        return self.file.read_back()

    def publish(self) -> None:
        if self.file.parts_sent:
            self.target.commit()  # CompleteMultipartUpload: the object appears whole, in one step
        else:
            body = self.file.waiting()
            self.file.close()
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=body)
        self.published = True

    def abort(self) -> None:
        self.file.close()
        if self.published or not self.file.parts_sent:
            self.target.closed = True
            return
        try:
            self.target.discard()  # AbortMultipartUpload, if one was started
        except Exception as exc:
            # The window fails anyway; a later run's sweep aborts the upload.
            log.warning(
                "Could not abort the upload of %s (%s); a later run cleans it up.", self.target.path, exc
            )
        finally:
            self.target.closed = True


class S3Output(Output):
    def __init__(self, uri: str, setting: str = "WIZ_OUTPUT_URI") -> None:
        self.uri = uri
        self.setting = setting
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
        try:
            fs = _s3_filesystem(attempts=2)
            fs.call_s3("list_multipart_uploads", Bucket=self.bucket, Prefix=self._key(""), MaxUploads=1)
            probe = self._key(f".wiz-pipeline-check-{uuid.uuid4().hex[:12]}")
            started = fs.call_s3("create_multipart_upload", Bucket=self.bucket, Key=probe)
            try:
                fs.call_s3(
                    "abort_multipart_upload", Bucket=self.bucket, Key=probe, UploadId=started["UploadId"]
                )
            except Exception as exc:
                # Outside every dataset, no sweep would find it: say so rather than leave it quietly.
                raise OutputError(
                    f"{self.setting}={self.uri}: could not abort the check upload {probe} "
                    f"({type(exc).__name__}); grant s3:AbortMultipartUpload and abort it, or add an "
                    "AbortIncompleteMultipartUpload lifecycle rule."
                ) from None
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(_explain(exc, self.uri, self.bucket, self.setting)) from None

    def open(self, key: str) -> Upload:
        return _S3Upload(self.fs, self.bucket, self._key(key))

    def read(self, key: str) -> BinaryIO | None:
        """Read in ranges, so that reading one column of a Parquet file fetches only that column."""
        path = f"{self.bucket}/{self._key(key)}"
        self.fs.invalidate_cache(path)  # a listing cached earlier must not hide a file written since
        try:
            return self.fs.open(path, "rb", cache_type="readahead", block_size=S3_PART_BYTES)
        except FileNotFoundError:
            return None

    def publish(self, uploads: list[Upload]) -> None:
        for upload in uploads:
            assert isinstance(upload, _S3Upload)
            upload.publish()

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

    def files(self, folders: list[str], *, stat: bool = True) -> dict[str, Listed]:
        # A listing carries every object's size and time: ``stat`` costs nothing here.
        root = f"{self.bucket}/{self.prefix}/" if self.prefix else f"{self.bucket}/"

        def listing(folder: str) -> dict[str, Any]:
            try:
                return self.fs.find(f"{root}{folder}", detail=True)
            except FileNotFoundError:
                return {}

        found: dict[str, Listed] = {}
        try:
            with ThreadPoolExecutor(LIST_CONCURRENCY) as pool:
                for entries in pool.map(listing, folders):
                    for path, info in entries.items():
                        if info.get("type") == "file" and "LastModified" in info:
                            when = info["LastModified"].timestamp()
                            found[path.removeprefix(root)] = Listed(int(info.get("size") or 0), when)
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(_explain(exc, self.uri, self.bucket, self.setting)) from None
        return found

    def read_many(self, keys: list[str]) -> dict[str, bytes | None]:
        """One GET per file, up to s3fs's batch (about a hundred) at a time."""
        if not keys:
            return {}
        paths = [f"{self.bucket}/{self._key(k)}" for k in keys]
        try:
            answers = self.fs.cat(paths, on_error="return")
        except Exception as exc:
            raise OutputError(_explain(exc, self.uri, self.bucket, self.setting)) from None
        contents: dict[str, bytes | None] = {}
        for key, path in zip(keys, paths, strict=True):
            answer = answers.get(path)
            if isinstance(answer, FileNotFoundError):
                contents[key] = None
            elif isinstance(answer, BaseException):
                raise OutputError(_explain(answer, self.uri, self.bucket))
            else:
                contents[key] = answer
        return contents

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


def _explain(exc: BaseException, uri: str, bucket: str, setting: str = "WIZ_OUTPUT_URI") -> str:
    """One line naming the variable at fault; built from error codes, never from the request."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(exc, WizConfigError):
        return str(exc)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    where = f"the S3 endpoint {endpoint} (AWS_ENDPOINT_URL)" if endpoint else "S3 (AWS_REGION)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"{setting}={uri}: no AWS credentials found: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or give the process an IAM role)."
        )
    if isinstance(exc, NoRegionError):
        return f"{setting}={uri}: no region: set AWS_REGION to the bucket's region."
    if isinstance(exc, BotoCoreError | OSError) and _code(exc) is None:
        return (
            f"{setting}={uri}: cannot reach {where} ({type(exc).__name__}): check AWS_ENDPOINT_URL "
            "and the network."
        )
    code = _code(exc)
    if code in _CREDENTIALS:
        return f"{setting}={uri}: {_CREDENTIALS[code]}"
    if code == "NoSuchBucket":
        return (
            f"{setting}={uri}: bucket {bucket!r} does not exist at {where}: create it (private) or "
            f"fix {setting}."
        )
    if code in ("AccessDenied", "AllAccessDisabled", "403"):
        return (
            f"{setting}={uri}: access denied: the credentials (AWS_ACCESS_KEY_ID or the role) need "
            "s3:PutObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on it."
        )
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
        return f"{setting}={uri}: the bucket is in another region: set AWS_REGION to its region."
    return f"{setting}={uri}: S3 refused the request ({code or type(exc).__name__}) at {where}."


def _code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError, also when s3fs wrapped it in an OSError."""
    for error in (exc, exc.__cause__, exc.__context__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code") or "") or None
    return None
