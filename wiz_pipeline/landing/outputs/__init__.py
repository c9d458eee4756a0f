"""Where the datasets go (``WIZ_OUTPUT_URI``): a local directory, or an S3 (compatible) bucket.

Both kinds give the same three guarantees, each in its own way (docs/output.md says it too):

- A reader never sees part of a file. Locally, a file is written under a hidden temporary name
  (``.<name>.tmp-<random>``, which no reader picks up), fsynced, and renamed over its final name.
  On S3, where nothing can be renamed, a file is written straight to its final key as a multipart
  upload: parts are sent as rows arrive (the unsent tail waits on local disk, not in memory), and S3
  shows the object only when the upload is completed, in one step that replaces the previous object
  whole; a file smaller than one part is sent in one PutObject once complete.
- A window that fails, or whose process is killed, leaves the window's previous file as it was (or
  nothing). Locally the temporary file is deleted (or, after a kill, left under its hidden name); on
  S3 the upload is aborted (or, after a kill, left incomplete, which S3 never shows).
- Leftovers of dead runs are cleaned: each run first deletes the temporary files, and aborts the
  incomplete uploads, under its dataset that are older than any live run can be.

Credentials and the endpoint are left to the AWS SDK (botocore, through s3fs): the standard
``AWS_*`` variables, or an instance/pod role. They never pass through this package's messages.
"""

from __future__ import annotations

import re
from pathlib import Path

from wiz_pipeline.landing.outputs.base import (
    STALE_AFTER_SECONDS,
    UNKNOWN,
    Listed,
    Output,
    OutputError,
    Upload,
)
from wiz_pipeline.landing.outputs.local import LocalOutput
from wiz_pipeline.landing.outputs.s3 import S3Output, stale_uploads

__all__ = [
    "STALE_AFTER_SECONDS",
    "UNKNOWN",
    "Listed",
    "LocalOutput",
    "Output",
    "OutputError",
    "S3Output",
    "Upload",
    "open_output",
    "parse_output_uri",
    "stale_uploads",
]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# WIZ_OUTPUT_URI when unset (the settings table shows it; the readers use it without loading the settings).
DEFAULT_OUTPUT_URI = "data"


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


def open_output(uri: str | Path | Output, setting: str = "WIZ_OUTPUT_URI") -> Output:
    """``setting``: the variable ``uri`` came from, which its errors name."""
    if isinstance(uri, Output):
        return uri
    uri = str(uri)
    if uri.startswith("s3://"):
        return S3Output(uri, setting)
    return LocalOutput(Path(uri), setting)
