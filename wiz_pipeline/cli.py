"""The ``wiz-pipeline`` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.wiz.errors import WizConfigError
from wiz_pipeline.wiz.urls import is_loopback_host

if TYPE_CHECKING:
    import dagster as dg


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _simulator_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated tenant (default 7)")
    parser.add_argument("--days", type=_positive, default=1.0, help="days of history up to now (default 1)")
    parser.add_argument(
        "--audit-entries",
        type=int,
        default=5000,
        help="audit log entries in the --days of history (default 5000)",
    )
    parser.add_argument(
        "--issues", type=int, default=500, help="issues in the --days of history (default 500)"
    )
    parser.add_argument(
        "--late-share",
        type=_not_negative,
        default=0.0,
        help="share of audit entries the API publishes late, to try re-reads (default 0; e.g. 0.02)",
    )
    parser.add_argument(
        "--late-max-seconds",
        type=_positive,
        default=3000.0,
        help="a late entry appears 60 s to this long after its timestamp (default 3000)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=3.0,
        help="answer 429 above this many requests/second per service account, as Wiz does "
        "(default 3; 0 = off)",
    )


def _simulator(args: argparse.Namespace, host: str = "127.0.0.1", port: int = 0) -> WizSimulator:
    """A simulator (not yet started) over a tenant of ``args.days`` up to now, and ``days_ahead``
    beyond it at the same density: the tenant is seen as of now, so records appear as time passes."""
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = getattr(args, "days_ahead", 0.0)
    scale = (args.days + ahead) / args.days
    tenant = generate_tenant(
        now - timedelta(days=args.days),
        now + timedelta(days=ahead),
        audit_entries=round(args.audit_entries * scale),
        issues=round(args.issues * scale),
        seed=args.seed,
        late_share=min(1.0, getattr(args, "late_share", 0.0)),
        max_late_seconds=getattr(args, "late_max_seconds", 3000.0),
    )
    return WizSimulator(
        tenant,
        host=host,
        port=port,
        rate_limit_per_second=args.rate_limit or None,
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
    )


def cmd_simulator(args: argparse.Namespace) -> int:
    if not is_loopback_host(args.host):
        print(
            f"--host {args.host}: the simulator only listens on loopback (127.0.0.1, ::1, localhost).",
            file=sys.stderr,
        )
        return 2
    try:
        sim = _simulator(args, args.host, args.port)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        if args.tls_cert is None and args.tls_key is None:
            raise
        print(f"--tls-cert/--tls-key: cannot load the certificate and key: {exc}.", file=sys.stderr)
        return 2
    try:
        sim.start()
    except OSError as exc:
        print(
            f"Cannot listen on {args.host}:{args.port}: {exc}. Pick another --port (0 = any free port).",
            file=sys.stderr,
        )
        return 1
    # These are the simulator's own made-up credentials, printed so a person can try it with curl.
    print(f"Wiz API simulator listening on {sim.base_url}  (Ctrl-C to stop)")
    print(f"  WIZ_API_URL={sim.graphql_url}")
    print(f"  WIZ_TOKEN_URL={sim.token_url}")
    print(f"  WIZ_CLIENT_ID={sim.client_id}")
    print(f"  WIZ_CLIENT_SECRET={sim.client_secret}")
    print(
        f"  tenant: {args.audit_entries} audit entries and {args.issues} issues over the {args.days:g} "
        f"day(s) up to now; more appear as time passes, for {args.days_ahead:g} day(s)"
    )
    print(
        "Try:"
        + ("  (HTTPS: add --cacert with the PEM of the CA that issued --tls-cert)" if args.tls_cert else "")
    )
    print(
        f"  TOKEN=$(curl -s {sim.token_url} -d grant_type=client_credentials -d client_id={sim.client_id} \\"
    )
    print(
        f"    -d client_secret={sim.client_secret} -d audience=wiz-api | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)["access_token"])\')'
    )
    print(
        f'  curl -s {sim.graphql_url} -H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' \\"
    )
    print(
        '    -d \'{"query": "{ auditLogEntries(first: 2) { nodes { id action timestamp } '
        "pageInfo { hasNextPage endCursor } } }\"}'"
    )
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from wiz_pipeline.demo import run_demo

    with _simulator(args) as sim:
        return run_demo(sim, Path(args.dir), args.days)


def cmd_dev(args: argparse.Namespace) -> int:
    from wiz_pipeline.demo import ignored_variables_notice
    from wiz_pipeline.dev import open_sandbox, run_dev

    notice = ignored_variables_notice("wiz-pipeline dev")
    if notice:
        print(notice, file=sys.stderr)
    home = Path(args.home).absolute()
    sandbox = open_sandbox(
        home,
        Path(args.output),
        days=args.days,
        audit_entries=args.audit_entries,
        issues=args.issues,
        tenant_seed=args.seed,
        late_share=args.late_share,
        max_late_seconds=args.late_max_seconds,
    )
    sim = sandbox.simulator(args.simulator_port, args.rate_limit or None)
    try:
        sim.start()
    except OSError as exc:
        print(
            f"Cannot start the simulator on port {args.simulator_port}: {exc}. Try --simulator-port 0.",
            file=sys.stderr,
        )
        return 1
    try:
        return run_dev(sim, sandbox, home, args.port)
    finally:
        sim.stop()


def cmd_checkpoints(args: argparse.Namespace) -> int:
    """Print each data type's checkpoint as derived from the Dagster instance's materializations."""

    from wiz_pipeline.checkpoints import collections_for, interval_change, progress
    from wiz_pipeline.settings import load_settings
    from wiz_pipeline.times import format_time

    if not os.environ.get("DAGSTER_HOME"):
        print(
            "DAGSTER_HOME is not set: point it at the directory of the Dagster instance the pipeline runs "
            "with (scripts/dev uses .dagster_home).",
            file=sys.stderr,
        )
        return 2
    settings = load_settings()
    now = datetime.now(UTC)
    lag = timedelta(seconds=settings.window_lag_seconds)
    stuck = False
    with _open_instance() as instance:
        for collection in collections_for(settings):
            state = progress(instance, collection, now, lag)
            detail = f"{state.materialized} of {state.closed_windows} closed windows written"
            if state.missing:
                detail += f"; {len(state.missing)} missing, the first {state.missing[0]}"
            if state.in_progress:
                detail += f"; {len(state.in_progress)} in progress"
            print(f"{collection.checkpoint_name}={format_time(state.checkpoint)}  # {detail}")
            changed = interval_change(instance, collection)
            if changed:
                print(f"# STOPPED: {changed}")
                stuck = True
    # A script must be able to tell: the schedule requests nothing until an operator acts.
    return 1 if stuck else 0


def cmd_ledger(args: argparse.Namespace) -> int:
    """Print each closed window of the range and whether it is written; exit 1 on any gap."""
    from wiz_pipeline.checkpoints import collections_for
    from wiz_pipeline.ledger import (
        Summary,
        json_line,
        json_summary,
        ledger,
        parse_bound,
        text_header,
        text_line,
        text_summary,
        window_range,
    )
    from wiz_pipeline.outputs import open_output
    from wiz_pipeline.settings import load_settings
    from wiz_pipeline.times import format_time

    if not os.environ.get("DAGSTER_HOME"):
        raise WizConfigError(
            "DAGSTER_HOME is not set: point it at the directory of the Dagster instance the pipeline "
            "runs with"
        )
    start, end = parse_bound("--from", args.start), parse_bound("--to", args.end)
    if start and end and start >= end:
        raise WizConfigError(f"--from {args.start} is not before --to {args.end}")
    settings = load_settings()
    collections = [c for c in collections_for(settings) if args.type in (None, c.data_type)]
    if not collections:
        setting = DATA_TYPES[args.type].enabled_by
        raise WizConfigError(f"--type {args.type}: {setting} is off, so {args.type} are not collected")
    output = open_output(settings.output_uri)
    now, lag = datetime.now(UTC), timedelta(seconds=settings.window_lag_seconds)
    if not any(window_range(c, now, lag, start, end)[1] for c in collections):
        seeds = ", ".join(f"{c.checkpoint_name}={format_time(c.seed)}" for c in collections)
        raise WizConfigError(
            "no closed window in the range: it must end after the seed and start before "
            f"now - WIZ_WINDOW_LAG_SECONDS ({seeds})"
        )
    gap = False
    out = sys.stdout
    with _open_instance() as instance:
        for n, collection in enumerate(collections):
            summary = Summary(collection.data_type)
            if not args.json:
                print(("\n" if n else "") + text_header(), file=out)
            for line in ledger(
                instance, output, collection, now=now, lag=lag, start=start, end=end, gaps_only=args.gaps_only
            ):
                summary.note(line)
                if line.written and args.gaps_only:
                    continue
                out.write((json_line(line) if args.json else text_line(line)) + "\n")
            print(json_summary(summary) if args.json else text_summary(summary), file=out)
            gap = gap or bool(summary.gaps)
    return 1 if gap else 0


def _open_instance() -> dg.DagsterInstance:
    """$DAGSTER_HOME's instance; a variable its dagster.yaml reads that is unset, or a database that
    can't be reached, ends the command with one line naming the variables (never their values)."""
    import dagster as dg

    home = os.environ["DAGSTER_HOME"]
    try:
        return dg.DagsterInstance.get()
    except dg.DagsterInvalidConfigError as exc:
        missing = re.findall(r'environment variable "(\w+)" which is not set', str(exc))
        if not missing:
            raise
        raise WizConfigError(
            f"{', '.join(dict.fromkeys(missing))} not set: {home}/dagster.yaml reads "
            f"{'it' if len(missing) == 1 else 'them'} from the environment (see README, PostgreSQL)"
        ) from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("dagster_postgres", "sqlalchemy"):
            raise
        cause = getattr(exc.__cause__, "orig", None) or exc.__cause__ or exc
        reason = " ".join(str(cause).split())
        password = os.environ.get("DAGSTER_PG_PASSWORD")
        if password:
            reason = reason.replace(password, "***")
        raise WizConfigError(
            f"cannot reach the PostgreSQL database of {home}/dagster.yaml ({reason}): check DAGSTER_PG_HOST, "
            "DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_USERNAME and DAGSTER_PG_PASSWORD"
        ) from None


def cmd_settings(args: argparse.Namespace) -> int:
    from wiz_pipeline.settings import environment_table, settings_table

    print(settings_table())
    print()
    print("Read by Dagster, httpx and the AWS SDK, not by wiz-pipeline itself:")
    print()
    print(environment_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wiz-pipeline",
        description="Collect Wiz audit logs and issues into Parquet, orchestrated by Dagster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO (secrets are never logged)")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version('wiz-pipeline')}"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser(
        "simulator",
        help="run the local Wiz API simulator and print its URLs",
        description="Serve a simulated Wiz tenant (OAuth token endpoint and GraphQL API) on 127.0.0.1.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    sim.add_argument(
        "--days-ahead",
        type=_not_negative,
        default=7.0,
        help="keep producing audit entries and issue changes for this many days after start, at the "
        "same density, so a pipeline polling it has new data (default 7)",
    )
    sim.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve HTTPS with this certificate chain (its key in it, or in --tls-key); clients then "
        "need the issuing CA, e.g. WIZ_CA_BUNDLE",
    )
    sim.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert, if not in that file")
    sim.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO")
    _simulator_args(sim)
    sim.set_defaults(func=cmd_simulator)

    demo = sub.add_parser(
        "demo",
        help="collect a day from a simulated tenant through Dagster and report what landed",
        description="Start the simulator, point the settings at it with seeds --days back, collect every "
        "closed window through Dagster (as the schedule's catch-up would), and print the runs, rows, "
        "files, checkpoints and two queries over the Parquet. Other WIZ_* settings in the environment "
        "(interval, page size, rate) are honoured.",
    )
    demo.add_argument(
        "--dir",
        default="wiz-demo",
        help="where the demo keeps its Dagster instance and Parquet output; emptied first (default wiz-demo)",
    )
    _simulator_args(demo)
    demo.set_defaults(func=cmd_demo)

    dev = sub.add_parser(
        "dev",
        help="run the simulator and the Dagster UI and daemon together, to browse and launch backfills",
        description="Start the simulator (a tenant --days back and 7 days ahead), set the settings to it "
        "with seeds --days back, and run the Dagster webserver (on 127.0.0.1) and daemon with a persistent "
        "DAGSTER_HOME. The tenant, the seeds and the output are kept with the home "
        "(wiz-sandbox.json in it) and reused at each start, so the UI's windows and checkpoints stay "
        "true; for a new tenant remove the home and the output, or pass another --home and --output. "
        "SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop everything it started.",
    )
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    dev.add_argument(
        "--simulator-port", type=int, default=8765, help="simulator port (default 8765; 0 = any)"
    )
    dev.add_argument(
        "--home",
        default=os.environ.get("DAGSTER_HOME") or ".dagster_home",
        help="DAGSTER_HOME, kept between runs (default $DAGSTER_HOME, else .dagster_home)",
    )
    dev.add_argument("--output", default="data", help="WIZ_OUTPUT_URI for the sandbox (default data)")
    _simulator_args(dev)
    dev.set_defaults(func=cmd_dev)

    checkpoints = sub.add_parser(
        "checkpoints",
        help="print AUDIT_SINCE_TIME and ISSUES_SINCE_TIME as derived from the Dagster instance",
        description="Read $DAGSTER_HOME's instance and print each data type's checkpoint: the end of the "
        "longest run of written windows from its seed. Uses the same WIZ_* settings as the pipeline. "
        "Exits 1 when a checkpoint can't advance without an operator (the interval changed under written "
        "windows: the schedule and runs refuse until it is set back or the asset wiped), 2 on a bad setting.",
    )
    checkpoints.set_defaults(func=cmd_checkpoints)

    ledger = sub.add_parser(
        "ledger",
        help="list each closed window, whether it is written, its rows and SHA-256; exit 1 on a gap",
        description="For each closed window in the range (default: from the seed to the latest closed "
        "window, WIZ_WINDOW_LAG_SECONDS included), print whether it is written (materialized in "
        "$DAGSTER_HOME's instance, latest run not failed, and its data file and manifest in "
        "WIZ_OUTPUT_URI), rows, queries, re-reads, late records, SHA-256 and the run that wrote it; then "
        "one line per data type saying whether the range has a gap. Exit 0: no gap; 1: a closed window "
        "is not written; 2: a usage or setting error.",
    )
    ledger.add_argument(
        "--type", choices=list(DATA_TYPES), help="one data type (default: every collected one)"
    )
    ledger.add_argument(
        "--from", dest="start", metavar="ISO", help="from the window holding this time (UTC unless an offset)"
    )
    ledger.add_argument("--to", dest="end", metavar="ISO", help="up to the windows starting before this time")
    ledger.add_argument(
        "--gaps-only",
        action="store_true",
        help="print only windows not written (and read only their manifests): quick over a long range",
    )
    ledger.add_argument("--json", action="store_true", help="JSON lines: one per window, then a summary")
    ledger.set_defaults(func=cmd_ledger)

    settings = sub.add_parser(
        "settings",
        help="print every setting, its default and meaning",
        description="Print every environment variable wiz-pipeline reads (name, default, meaning), then "
        "those read by Dagster and the AWS SDK: the tables of the README's Settings section.",
    )
    settings.set_defaults(func=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except WizConfigError as exc:
        # A bad setting: the message names the variable and what is allowed; a traceback adds nothing.
        print(f"wiz-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
