"""Every setting: its environment variable, default, validation and help text, declared once.

The settings table of docs/configuration.md and ``wiz-pipeline settings`` are printed from ``SETTINGS``;
a test checks that docs/configuration.md lists each one.

Two kinds of settings:
- The Wiz endpoint and credentials (``required``) are read by Dagster through ``EnvVar`` when a run
  starts, so that the UI loads with a half-configured environment and never shows the secret; a run
  without them fails with one line naming every missing one. A ``WIZ_API_URL`` that is set is checked
  when the definitions load too, like the settings below.
- Everything else has a default and is read and checked when the definitions load: the polling
  interval and the seeds shape the partitions themselves, so a wrong value must stop the load with
  a message rather than define windows nobody asked for.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wiz_pipeline.core.urls import check_url
from wiz_pipeline.data_types import DATA_TYPES, DataType
from wiz_pipeline.landing.iceberg import Tables, catalog_properties
from wiz_pipeline.landing.outputs import DEFAULT_OUTPUT_URI, parse_output_uri
from wiz_pipeline.ocsf.layout import default_uri as default_ocsf_uri
from wiz_pipeline.wiz.errors import WizConfigError
from wiz_pipeline.wiz.options import MAX_PAGE_SIZE, WizOptions
from wiz_pipeline.wiz.secret import Secret
from wiz_pipeline.wiz.tls import check_ca_bundle

DEFAULT_SEED = "2025-09-12T21:00:09Z"

# Dagster time windows follow cron ticks, which fall on whole minutes and repeat each hour or day,
# so a window must be a whole number of minutes dividing an hour or of hours dividing a day. (90 s
# divides an hour and 24 min divides a day, but no cron expression ticks at either evenly.)
ALLOWED_INTERVALS = tuple(
    sorted({m * 60 for m in range(1, 61) if 60 % m == 0} | {h * 3600 for h in range(1, 25) if 24 % h == 0})
)


# Entries published more than a week late are an incident to investigate, not ingestion delay.
MAX_REREAD_AFTER_SECONDS = 7 * 86400


class SettingsError(WizConfigError):
    """A setting has a value we can't use; the message names the variable and what is allowed."""


def _int(name: str, text: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number.") from None
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{name}={value} is out of range: it must be {allowed}.")
    return value


def _float(name: str, text: str, *, positive: bool) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number.") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0 or (positive and value == 0):
        raise SettingsError(f"{name}={text!r} must be a finite number {'> 0' if positive else '>= 0'}.")
    return value


def parse_interval(name: str, text: str) -> int:
    value = _int(name, text, minimum=1)
    if value in ALLOWED_INTERVALS:
        return value
    nearest = sorted(ALLOWED_INTERVALS, key=lambda allowed: (abs(allowed - value), allowed))[:2]
    raise SettingsError(
        f"{name}={value} does not divide an hour or a day into whole-minute windows, so Dagster's "
        f"cron-based time windows can't follow it. Nearest allowed values: "
        f"{' or '.join(str(n) for n in sorted(nearest))}. All allowed values (seconds): "
        f"{', '.join(str(n) for n in ALLOWED_INTERVALS)}."
    )


def parse_seed(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not an ISO 8601 time such as {DEFAULT_SEED}.") from None
    if value.tzinfo is None:
        # A time without a zone would silently mean the machine's local time to some readers.
        raise SettingsError(
            f"{name}={text!r} has no time zone: write it in UTC with a Z, e.g. {DEFAULT_SEED}."
        )
    return value.astimezone(UTC)


def _bool(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={text!r} is not a yes/no value: use true or false.")


def _json_object(name: str, text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name} is not valid JSON ({exc.msg} at position {exc.pos}).") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SettingsError(f'{name} must be a JSON object of strings, such as {{"audience": "wiz-api"}}.')
    return value


def _choices(allowed: tuple[str, ...]) -> Callable[[str, str], tuple[str, ...]]:
    """A parser of a comma list of ``allowed`` values (case-insensitive, at least one)."""

    def parse(name: str, text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip().upper() for v in text.split(",") if v.strip()))
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise WizConfigError(
                f"{name}={text!r}: expected a comma list of {', '.join(allowed)}"
                + (f"; {', '.join(wrong)} is not one" if wrong else "")
            )
        return values

    return parse


OCSF_LAYOUTS = ("hive", "security_lake")


def _one_of(name: str, text: str, allowed: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in allowed:
        raise SettingsError(f"{name}={text!r}: expected one of {', '.join(allowed)}.")
    return value


def _region(name: str, text: str) -> str:
    value = text.strip()
    if value and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", value):
        raise SettingsError(f"{name}={text!r} is not an AWS region name such as us-east-1.")
    return value


def _account_id(name: str, text: str) -> str:
    value = text.strip()
    if value and not re.fullmatch(r"\d{12}", value):
        raise SettingsError(f"{name}={text!r} is not a 12-digit AWS account id.")
    return value


def _source_version(name: str, text: str) -> str:
    value = text.strip().strip("/")
    if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", value):
        raise SettingsError(f"{name}={text!r}: expected a version such as 1.0 (letters, digits, . _ -).")
    return value


def _namespace(name: str, text: str) -> str:
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value):
        raise SettingsError(
            f"{name}={text!r} is not a namespace name: letters, digits and underscores, not starting "
            "with a digit (e.g. wiz)."
        )
    return value


def _daily(cron: str) -> str:
    minute, hour, *_ = cron.split()
    return f"daily at {int(hour):02d}:{int(minute):02d}"


def parse_cron(name: str, text: str) -> str:
    """A cron expression as Dagster's schedules take it (checked with Dagster's own validator, so
    that a value accepted here can't fail the definitions later)."""
    # Private, but the very check ScheduleDefinition applies; imported late, as settings load
    # without Dagster elsewhere (the CLI's settings table).
    from dagster._utils.schedules import is_valid_cron_string

    value = " ".join(text.split())
    if not is_valid_cron_string(value):
        raise SettingsError(
            f"{name}={text!r} is not a cron expression: give five fields (minute hour day-of-month "
            "month day-of-week, in UTC), such as '20 4 * * *' for daily at 04:20."
        )
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None  # None: required
    help: str
    parse: Callable[[str, str], Any] = lambda name, text: text
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "WIZ_API_URL",
        None,
        "The tenant's GraphQL endpoint, e.g. https://api.us1.app.wiz.io/graphql.",
        # Checked when the definitions load if it is set (it is read again when a run starts).
        lambda name, text: check_url(text.strip(), name=name),
    ),
    Setting("WIZ_CLIENT_ID", None, "The service account's client id."),
    Setting(
        "WIZ_CLIENT_SECRET", None, "The service account's client secret (never logged or shown).", secret=True
    ),
    Setting(
        "WIZ_TOKEN_URL",
        "https://auth.app.wiz.io/oauth/token",
        "OAuth token endpoint (FedRAMP: https://auth.app.wiz.us/oauth/token, gov: https://auth.gov.wiz.io/oauth/token).",
        lambda name, text: check_url(text.strip(), name=name),
    ),
    Setting("WIZ_SCOPES", "", "Space-separated OAuth scopes; sent only when set."),
    Setting(
        "WIZ_TOKEN_REFRESH_MARGIN_SECONDS",
        "60",
        "Fetch a new token this many seconds before the current one expires.",
        lambda name, text: _float(name, text, positive=False),
    ),
    Setting("WIZ_OAUTH_HEADERS", "{}", "Extra headers for the token request (JSON object).", _json_object),
    Setting(
        "WIZ_OAUTH_DATA",
        '{"audience": "wiz-api"}',
        "Extra form fields for the token request (JSON object; legacy tenants: beyond-api).",
        _json_object,
    ),
    Setting(
        "WIZ_CA_BUNDLE",
        "",
        "PEM file of the CA that signs the API and token hosts' certificates behind a TLS-inspecting "
        "proxy or a private CA, trusted on top of the default ones (SSL_CERT_FILE, else certifi's).",
        check_ca_bundle,
    ),
    Setting(
        "WIZ_POLL_INTERVAL_SECONDS",
        "1800",
        "Window length and schedule interval; must divide an hour or a day into whole minutes.",
        parse_interval,
    ),
    # Each data type's seed, and the switch of those that can be turned off (see data_types/).
    *(Setting(dt.checkpoint_variable, DEFAULT_SEED, dt.seed_help, parse_seed) for dt in DATA_TYPES.values()),
    *(
        Setting(dt.enabled_by, "true" if dt.enabled_by_default else "false", dt.enabled_help, _bool)
        for dt in DATA_TYPES.values()
        if dt.enabled_by
    ),
    *(
        Setting(dt.choice.setting, ",".join(dt.choice.default), dt.choice.help, _choices(dt.choice.choices))
        for dt in DATA_TYPES.values()
        if dt.choice
    ),
    *(
        Setting(
            dt.current.cron_setting,
            dt.current.cron_default,
            f"When the current state of every {dt.current.noun[:-1]} ({dt.current.dataset}) is "
            f"rebuilt: a cron expression in UTC (default {_daily(dt.current.cron_default)}, between "
            "the window ticks).",
            parse_cron,
        )
        for dt in DATA_TYPES.values()
        if dt.current
    ),
    *(
        Setting(
            dt.current.full_read_days_setting,
            str(dt.current.full_read_days_default),
            f"Every how many days a {dt.current.dataset} build reads every {dt.current.noun[:-1]} from "
            "the API (reconciling deletions and anything a window missed); the builds between are the "
            "previous build plus the windows written since (0: every build reads everything).",
            lambda name, text: _int(name, text, minimum=0, maximum=366),
        )
        for dt in DATA_TYPES.values()
        if dt.current and dt.current.full_read_days_setting
    ),
    Setting(
        "WIZ_OUTPUT_URI",
        DEFAULT_OUTPUT_URI,
        "Where the Parquet datasets are written: a directory (a path, relative to the working "
        "directory, or file:///path), or s3://bucket/prefix (a private bucket; see AWS_*).",
        parse_output_uri,
    ),
    Setting(
        "WIZ_OCSF",
        "false",
        "Also write every collected window as OCSF 1.5.0 events (assets wiz/ocsf/<data type>, the "
        "same windows as their source, written in the same run): one dataset per OCSF class under "
        "WIZ_OCSF_URI (see docs/ocsf.md).",
        _bool,
    ),
    Setting(
        "WIZ_OCSF_URI",
        "",
        "Where the OCSF datasets are written, as WIZ_OUTPUT_URI is (empty: {WIZ_OUTPUT_URI}/ocsf); for "
        "Security Lake, s3://<its bucket> (the layout adds ext/<source>/...).",
        lambda name, text: parse_output_uri(name, text) if text.strip() else "",
    ),
    Setting(
        "WIZ_OCSF_LAYOUT",
        "hive",
        "hive: <class>/source=<data type>/date=YYYY-MM-DD/ folders; security_lake: a Security Lake "
        "custom source per class, ext/wiz_<class>/region=<region>/accountId=<account>/eventDay=YYYYMMDD/ "
        "(needs WIZ_OCSF_REGION and WIZ_OCSF_ACCOUNT_ID).",
        lambda name, text: _one_of(name, text, OCSF_LAYOUTS),
    ),
    Setting(
        "WIZ_OCSF_REGION",
        "",
        "security_lake layout: the region= partition, the AWS region of the Security Lake the custom "
        "sources belong to (e.g. us-east-1).",
        _region,
    ),
    Setting(
        "WIZ_OCSF_ACCOUNT_ID",
        "",
        "security_lake layout: the accountId= partition, the 12-digit AWS account the custom sources "
        "were registered with.",
        _account_id,
    ),
    Setting(
        "WIZ_OCSF_SOURCE_VERSION",
        "",
        "security_lake layout: the source version segment of the custom sources' location, when "
        "Security Lake gave them one (ext/wiz_<class>/<version>/...); empty: none.",
        _source_version,
    ),
    Setting(
        "WIZ_ICEBERG",
        "false",
        "Also register every dataset (the windows, the current tables, the OCSF classes) as an Apache "
        "Iceberg table in the catalog below, namespace WIZ_ICEBERG_NAMESPACE, each window replaced in "
        "one commit (see docs/iceberg.md).",
        _bool,
    ),
    Setting(
        "WIZ_ICEBERG_NAMESPACE",
        "wiz",
        "The catalog namespace (database) of the tables; one per WIZ_OUTPUT_URI.",
        _namespace,
    ),
    Setting(
        "WIZ_ICEBERG_CATALOG_TYPE",
        "",
        "The catalog's type as pyiceberg's load_catalog takes it: sql, glue or rest (empty: sql, a "
        "SQLite catalog at {WIZ_OUTPUT_URI}/_iceberg/catalog.db, for a local output only). Every other "
        "WIZ_ICEBERG_CATALOG_<NAME> is passed on as property <name> (__ is a dot, _ a dash): e.g. "
        "WIZ_ICEBERG_CATALOG_WAREHOUSE, WIZ_ICEBERG_CATALOG_CREDENTIAL (rest), "
        "WIZ_ICEBERG_CATALOG_GLUE__REGION, WIZ_ICEBERG_CATALOG_S3__ENDPOINT.",
    ),
    Setting(
        "WIZ_ICEBERG_CATALOG_URI",
        "",
        "sql: a SQLAlchemy URL, postgresql+psycopg2://user:password@host:5432/db (never logged or "
        "shown); rest: the catalog's https:// URL.",
        secret=True,
    ),
    Setting(
        "WIZ_ICEBERG_SNAPSHOT_RETENTION_DAYS",
        "7",
        "Table maintenance expires snapshots older than this many days (time travel reaches that far "
        "back) and then deletes the files no snapshot references once they are as old (0: keep only "
        "the current snapshot).",
        lambda name, text: _int(name, text, minimum=0, maximum=3650),
    ),
    Setting(
        "WIZ_ICEBERG_MAINTENANCE_CRON",
        "40 3 * * *",
        "When the iceberg_maintenance job runs (cron, UTC; default daily at 03:40).",
        parse_cron,
    ),
    Setting(
        "WIZ_PAGE_SIZE",
        str(MAX_PAGE_SIZE),
        f"Nodes per GraphQL page (1..{MAX_PAGE_SIZE}).",
        lambda name, text: _int(name, text, minimum=1, maximum=MAX_PAGE_SIZE),
    ),
    Setting(
        "WIZ_MAX_RETRIES",
        "5",
        "Retries of a failed request (5xx, timeouts, resets) before its window fails.",
        lambda name, text: _int(name, text, minimum=0, maximum=100),
    ),
    Setting(
        "WIZ_REQUEST_TIMEOUT_SECONDS",
        "60",
        "A whole answer must arrive within this many seconds of a request (heavy issue queries may "
        "need more).",
        lambda name, text: _float(name, text, positive=True),
    ),
    Setting(
        "WIZ_MAX_REQUESTS_PER_SECOND",
        "3",
        "Requests per second to the API, shared by every run (lowered for a while after a 429).",
        lambda name, text: _float(name, text, positive=True),
    ),
    Setting(
        "WIZ_WINDOW_LAG_SECONDS",
        "300",
        "How long after a window closes it is collected, so that late records are in.",
        lambda name, text: _int(name, text, minimum=0, maximum=7 * 86400),
    ),
    Setting(
        "WIZ_REREAD_AFTER_SECONDS",
        "3600",
        "Each audit log window is collected again once it has been closed this long, to catch entries "
        "the API published late (0 = off; at most 7 days; it must exceed WIZ_WINDOW_LAG_SECONDS, or "
        "no window is ever re-read).",
        lambda name, text: _int(name, text, minimum=0, maximum=MAX_REREAD_AFTER_SECONDS),
    ),
    Setting(
        "WIZ_MAX_WINDOWS_PER_RUN",
        "48",
        "Catch-up runs cover at most this many windows each.",
        lambda name, text: _int(name, text, minimum=1, maximum=10_000),
    ),
    Setting(
        "WIZ_MAX_WINDOWS_PER_BACKFILL_RUN",
        "336",
        "UI backfills are cut into runs of at most this many windows (each run costs seconds of "
        "Dagster's time; a run holds a file open per window its query hasn't passed yet, every window "
        "when the API's order is random).",
        lambda name, text: _int(name, text, minimum=1, maximum=1000),
    ),
)


@dataclass(frozen=True)
class EnvironmentVariable:
    """A variable read by Dagster, httpx or the AWS SDK rather than by our settings; declared here so that
    docs/configuration.md, ``wiz-pipeline settings`` and the deployment files' check all know it."""

    name: str
    read_by: str
    help: str
    secret: bool = False


ENVIRONMENT: tuple[EnvironmentVariable, ...] = (
    EnvironmentVariable(
        "DAGSTER_HOME",
        "Dagster",
        "The instance directory (dagster.yaml); must persist, it holds the checkpoints.",
    ),
    EnvironmentVariable("DAGSTER_PG_USERNAME", "Dagster", "PostgreSQL user (deploy/dagster-postgres.yaml)."),
    EnvironmentVariable(
        "DAGSTER_PG_PASSWORD", "Dagster", "PostgreSQL password (deploy/dagster-postgres.yaml).", secret=True
    ),
    EnvironmentVariable("DAGSTER_PG_HOST", "Dagster", "PostgreSQL host (deploy/dagster-postgres.yaml)."),
    EnvironmentVariable(
        "DAGSTER_PG_PORT",
        "Dagster",
        "PostgreSQL port, usually 5432; required (deploy/dagster-postgres.yaml).",
    ),
    EnvironmentVariable("DAGSTER_PG_DB", "Dagster", "PostgreSQL database (deploy/dagster-postgres.yaml)."),
    EnvironmentVariable("AWS_ACCESS_KEY_ID", "AWS SDK", "S3 access key, for an s3:// WIZ_OUTPUT_URI."),
    EnvironmentVariable(
        "AWS_SECRET_ACCESS_KEY", "AWS SDK", "S3 secret key (never logged or shown).", secret=True
    ),
    EnvironmentVariable(
        "AWS_SESSION_TOKEN", "AWS SDK", "Temporary credentials' session token (never logged).", secret=True
    ),
    EnvironmentVariable("AWS_REGION", "AWS SDK", "The bucket's region (AWS_DEFAULT_REGION if unset)."),
    EnvironmentVariable(
        "AWS_ENDPOINT_URL",
        "AWS SDK",
        "Endpoint of an S3-compatible store (MinIO, Ceph, R2), https:// (http:// only to loopback); "
        "buckets are then addressed by path. Unset for AWS.",
    ),
    EnvironmentVariable(
        "SSL_CERT_FILE",
        "httpx",
        "PEM file of the CAs trusted for the API and token hosts instead of certifi's (e.g. the system's "
        "/etc/ssl/certs/ca-certificates.crt); WIZ_CA_BUNDLE adds to it.",
    ),
    EnvironmentVariable(
        "HTTPS_PROXY",
        "httpx, AWS SDK",
        "Proxy for https:// requests, http://host:port (CONNECT tunnel); the Wiz hosts' certificates are "
        "still verified (WIZ_CA_BUNDLE for an inspecting proxy's CA).",
    ),
    EnvironmentVariable(
        "NO_PROXY",
        "httpx, AWS SDK",
        "Comma-separated hosts, domains (a.com covers www.a.com) and IPs reached directly, not "
        "through HTTPS_PROXY.",
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}
KNOWN_VARIABLES = frozenset(BY_NAME) | {v.name for v in ENVIRONMENT}


@dataclass(frozen=True)
class Settings:
    """The validated values of every setting that has a default (see the module's docstring)."""

    token_url: str
    scopes: str
    token_refresh_margin_seconds: float
    oauth_headers: dict[str, str]
    oauth_data: dict[str, str]
    ca_bundle: str  # an absolute path, or "" (none)
    poll_interval_seconds: int
    seeds: dict[str, datetime]  # by data type: where its collection starts
    enabled: dict[str, bool]  # by data type: collected or not
    # By data type name, as its setting says: the declaration with its choice filter filled in.
    data_types: dict[str, DataType]
    current_crons: dict[str, str]  # by data type with a current table: when it is rebuilt
    full_read_days: dict[str, int]  # by data type whose current table reads everything only now and then
    output_uri: str  # an absolute directory, or s3://bucket[/prefix]
    ocsf: bool
    ocsf_uri: str  # as WIZ_OCSF_URI is set ("": {output_uri}/ocsf; see ocsf_output_uri)
    ocsf_layout: str
    ocsf_region: str
    ocsf_account_id: str
    ocsf_source_version: str
    page_size: int
    max_retries: int
    request_timeout_seconds: float
    max_requests_per_second: float
    window_lag_seconds: int
    reread_after_seconds: int
    max_windows_per_run: int
    max_windows_per_backfill_run: int
    iceberg: bool
    iceberg_namespace: str
    iceberg_snapshot_retention_days: int
    iceberg_maintenance_cron: str

    @property
    def ocsf_output_uri(self) -> str:
        return self.ocsf_uri or default_ocsf_uri(self.output_uri)

    def client_options(self) -> dict[str, Any]:
        """The client's options that come from settings (``WizOptions`` fields), checked above."""
        return {
            "token_url": self.token_url,
            "scopes": self.scopes,
            "oauth_data": self.oauth_data,
            "oauth_headers": self.oauth_headers,
            "ca_bundle": self.ca_bundle,
            "refresh_margin_seconds": self.token_refresh_margin_seconds,
            "page_size": self.page_size,
            "max_retries": self.max_retries,
            "request_timeout_seconds": self.request_timeout_seconds,
            "max_requests_per_second": self.max_requests_per_second,
        }

    def wiz_options(
        self, *, api_url: str, client_id: str, client_secret: str | Secret, **tuning: Any
    ) -> WizOptions:
        """The client's options: these settings, the endpoint and credentials (the required settings,
        which Dagster reads when a run starts), and ``tuning`` (other ``WizOptions`` fields)."""
        fields = {**self.client_options(), **tuning}
        return WizOptions(api_url=api_url, client_id=client_id, client_secret=client_secret, **fields)


def _field(name: str) -> str:
    return name.lower().removeprefix("wiz_")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting with a default; raise ``SettingsError`` naming each bad one."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        if setting.required:
            # Read by Dagster when a run starts; a value that is set is still checked now, so that a
            # bad endpoint stops the load with one line rather than each run with a traceback.
            text = env.get(setting.name)
            if text and not setting.secret:
                try:
                    setting.parse(setting.name, text)
                except WizConfigError as exc:
                    problems.append(str(exc))
            continue
        text = env.get(setting.name)
        if text is None or text == "":
            text = setting.default
        try:
            values[setting.name] = setting.parse(setting.name, text)
        except WizConfigError as exc:
            problems.append(str(exc))
    reread, lag = values.get("WIZ_REREAD_AFTER_SECONDS"), values.get("WIZ_WINDOW_LAG_SECONDS")
    if reread and lag is not None and reread <= lag and env.get("WIZ_REREAD_AFTER_SECONDS"):
        # The first read happens WIZ_WINDOW_LAG_SECONDS after a window closes: already past the
        # re-read's time, so no window would ever be read a second time. (Left to its default with
        # a lag of an hour or more, re-reads are simply off, as the help says.)
        problems.append(
            f"WIZ_REREAD_AFTER_SECONDS={reread} must be 0 (off) or more than WIZ_WINDOW_LAG_SECONDS={lag}: "
            "a window is first read that long after it closes, so it would never be read again."
        )
    if values.get("WIZ_OCSF_LAYOUT") == "security_lake":
        # Security Lake's crawler partitions each custom source by these two: files without them
        # would land where no table looks.
        unset = [n for n in ("WIZ_OCSF_REGION", "WIZ_OCSF_ACCOUNT_ID") if n in values and not values[n]]
        if unset:
            problems.append(
                f"WIZ_OCSF_LAYOUT=security_lake needs {' and '.join(unset)}: the region and the account "
                "the Security Lake custom sources were registered in."
            )
    if values.get("WIZ_ICEBERG") and "WIZ_OUTPUT_URI" in values:
        try:
            catalog_properties(env, values["WIZ_OUTPUT_URI"])
        except WizConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingsError("Bad settings:\n  " + "\n  ".join(problems))
    # Read from the environment when a catalog is opened (``open_tables``): a URI may hold a password.
    passed_on = {"WIZ_ICEBERG_CATALOG_TYPE", "WIZ_ICEBERG_CATALOG_URI"}
    per_data_type = {dt.checkpoint_variable for dt in DATA_TYPES.values()}
    per_data_type |= {dt.enabled_by for dt in DATA_TYPES.values() if dt.enabled_by}
    per_data_type |= {dt.choice.setting for dt in DATA_TYPES.values() if dt.choice}
    currents = [dt for dt in DATA_TYPES.values() if dt.current]
    per_data_type |= {dt.current.cron_setting for dt in currents}
    per_data_type |= {dt.current.full_read_days_setting or "" for dt in currents}
    return Settings(
        **{
            _field(name): value
            for name, value in values.items()
            if name not in per_data_type and name not in passed_on
        },
        seeds={dt.name: values[dt.checkpoint_variable] for dt in DATA_TYPES.values()},
        enabled={dt.name: not dt.enabled_by or values[dt.enabled_by] for dt in DATA_TYPES.values()},
        data_types={
            dt.name: dt.with_choice(values[dt.choice.setting]) if dt.choice else dt
            for dt in DATA_TYPES.values()
        },
        current_crons={dt.name: values[dt.current.cron_setting] for dt in currents},
        full_read_days={
            dt.name: values[dt.current.full_read_days_setting]
            for dt in currents
            if dt.current.full_read_days_setting
        },
    )


def open_tables(settings: Settings, env: Mapping[str, str] | None = None) -> Tables:
    """The Iceberg catalog of ``settings`` (WIZ_ICEBERG), its properties read from the environment
    now, so that a catalog password never travels in Dagster config or the settings."""
    env = os.environ if env is None else env
    return Tables(catalog_properties(env, settings.output_uri), settings.iceberg_namespace)


def settings_table() -> str:
    """The Markdown table of every setting, as in docs/configuration.md."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "required" if s.required else (f"`{s.default}`" if s.default else "empty")
        lines.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(lines)


def environment_table() -> str:
    """The Markdown table of the variables read by Dagster, httpx and the AWS SDK, as in
    docs/configuration.md."""
    lines = ["| variable | read by | meaning |", "|---|---|---|"]
    lines += [f"| `{v.name}` | {v.read_by} | {v.help} |" for v in ENVIRONMENT]
    return "\n".join(lines)
