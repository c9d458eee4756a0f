"""Where a window's OCSF rows go under WIZ_OCSF_URI: one Parquet file per (class, data type, window).

``hive`` (the default): ``<class>/source=<data type>/date=YYYY-MM-DD/<class>_<data type>_<start>.parquet``,
one dataset per OCSF class whose ``source`` and ``date`` hive columns say where a row came from.

``security_lake``: a Security Lake custom source per class (Security Lake wants one class per source),
``ext/wiz_<class>[/<version>]/region=<region>/accountId=<account>/eventDay=YYYYMMDD/``
``<data type>_<start>.parquet``.

Either way a file holds one window of one source, named by the window's start, so a rerun replaces
exactly it. Each file's manifest (``manifest_key``) is ``_<stem>.json`` beside it in the hive layout;
Security Lake wants nothing but Parquet under a custom source, so there the manifests go to
``{WIZ_OUTPUT_URI}/_ocsf_manifests/`` (the same path, ``.json``), beside the native datasets.

A class fed by two sources (issues and detections are both Detection Findings) keeps
their files apart by ``source=`` (hive) or by the file name's prefix (Security Lake); an audit window
split over two classes (Authentication, API Activity) is two files, published together after both
are written (see ``collect.ocsf_views``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


def default_uri(output_uri: str) -> str:
    """WIZ_OCSF_URI when unset: ``{WIZ_OUTPUT_URI}/ocsf``."""
    return f"{output_uri.rstrip('/')}/ocsf"


def table_name(class_name: str) -> str:
    """A class's name among the datasets: its DuckDB view, its Iceberg table (``ocsf_<class>``)."""
    return f"ocsf_{class_name}"


# Under WIZ_OUTPUT_URI: the Security Lake layout's manifests (a leading _ hides it from readers).
MANIFESTS = "_ocsf_manifests"


@dataclass(frozen=True)
class OcsfLayout:
    kind: str = "hive"  # or "security_lake"
    region: str = ""
    account_id: str = ""
    source_version: str = ""

    def source_name(self, class_name: str) -> str:
        """The Security Lake custom source a class's files belong to."""
        return f"wiz_{class_name}"

    def dataset(self, class_name: str) -> str:
        """The folder holding every file of a class (relative to WIZ_OCSF_URI)."""
        if self.kind == "security_lake":
            version = f"/{self.source_version}" if self.source_version else ""
            return f"ext/{self.source_name(class_name)}{version}"
        return class_name

    def folder(self, class_name: str, data_type: str, day: date) -> str:
        if self.kind == "security_lake":
            return (
                f"{self.dataset(class_name)}/region={self.region}/accountId={self.account_id}/"
                f"eventDay={day:%Y%m%d}"
            )
        return f"{class_name}/source={data_type}/date={day:%Y-%m-%d}"

    def file_key(self, class_name: str, data_type: str, window_start: datetime) -> str:
        stem = data_type if self.kind == "security_lake" else f"{class_name}_{data_type}"
        folder = self.folder(class_name, data_type, window_start.date())
        return f"{folder}/{stem}_{window_start:%Y%m%dT%H%M%SZ}.parquet"

    @property
    def manifests_beside(self) -> bool:
        """True: manifests are in WIZ_OCSF_URI beside their files; False: in WIZ_OUTPUT_URI."""
        return self.kind != "security_lake"

    def manifest_key(self, data_key: str) -> str:
        """The manifest of the window's file at ``data_key`` (``file_key``'s name)."""
        folder, _, name = data_key.rpartition("/")
        stem = name.removesuffix(".parquet")
        if self.manifests_beside:
            return f"{folder}/_{stem}.json"
        return f"{MANIFESTS}/{folder}/{stem}.json"

    @property
    def hive_columns(self) -> tuple[str, ...]:
        """The partition columns a reader sees from the folder names."""
        if self.kind == "security_lake":
            return ("region", "accountId", "eventDay")
        return ("source", "date")
