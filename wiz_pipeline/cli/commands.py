"""The ``wiz-pipeline`` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from wiz_pipeline.core.errors import WizConfigError
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.simulator.command import add_serve_arguments, add_tenant_arguments, serve
from wiz_pipeline.simulator.command import simulator_from_args as _simulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO

    import dagster as dg

    from wiz_pipeline.readers.ledger import WindowLine


# Enough for each of the report's questions to have answers, at about the demo's former run time.
DEMO_FINDINGS = {"vulnerability_findings": 3000, "configuration_findings": 300, "detections": 300}


def cmd_demo(args: argparse.Namespace) -> int:
    from wiz_pipeline.cli.demo import run_demo

    with _simulator(args) as sim:
        return run_demo(sim, Path(args.dir), args.days, iceberg=args.iceberg)


def cmd_dev(args: argparse.Namespace) -> int:
    from wiz_pipeline.cli.demo import ignored_variables_notice
    from wiz_pipeline.cli.dev import open_sandbox, run_dev

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
        vulnerability_findings=args.vulnerability_findings,
        configuration_findings=args.configuration_findings,
        detections=args.detections,
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

    from dataclasses import replace

    from wiz_pipeline.core.times import format_time
    from wiz_pipeline.orchestration.checkpoints import collections_for, interval_change, progress
    from wiz_pipeline.settings import load_settings

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
            if collection.ocsf_key is not None:
                # The view has no checkpoint of its own: it is written with its source's windows.
                # Windows written before WIZ_OCSF was on are behind until its backfill.
                view = progress(instance, replace(collection, asset_key=collection.ocsf_key), now, lag)
                behind = view.closed_windows - view.materialized
                print(
                    f"#   ocsf/{collection.data_type}: {view.materialized} of {view.closed_windows} closed "
                    "windows written"
                    + (
                        f"; {behind} behind, the first {view.missing[0]} (materialize "
                        f"wiz/ocsf/{collection.data_type} for them: rebuilt from the written windows)"
                        if behind
                        else ""
                    )
                )
            changed = interval_change(instance, collection)
            if changed:
                print(f"# STOPPED: {changed}")
                stuck = True
    # A script must be able to tell: the schedule requests nothing until an operator acts.
    return 1 if stuck else 0


def cmd_ledger(args: argparse.Namespace) -> int:
    """Print each closed window of the range and whether it is written; exit 1 on any gap."""
    from wiz_pipeline.core.times import format_time
    from wiz_pipeline.landing.outputs import open_output
    from wiz_pipeline.orchestration.checkpoints import collections_for
    from wiz_pipeline.orchestration.ledger import ledger, ocsf_ledger, window_range
    from wiz_pipeline.readers.ledger import parse_bound
    from wiz_pipeline.settings import load_settings, open_tables

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
    ocsf_output = open_output(settings.ocsf_output_uri, "WIZ_OCSF_URI")
    now, lag = datetime.now(UTC), timedelta(seconds=settings.window_lag_seconds)
    if not any(window_range(c, now, lag, start, end) for c in collections):
        seeds = ", ".join(f"{c.checkpoint_name}={format_time(c.seed)}" for c in collections)
        raise WizConfigError(
            "no closed window in the range: it must end after the seed and start before "
            f"now - WIZ_WINDOW_LAG_SECONDS ({seeds})"
        )
    gap = False
    out = sys.stdout
    tables = open_tables(settings) if settings.iceberg else None
    with _open_instance() as instance:
        for n, collection in enumerate(collections):
            lines = ledger(
                instance,
                output,
                collection,
                now=now,
                lag=lag,
                start=start,
                end=end,
                gaps_only=args.gaps_only,
                tables=None if tables is None else [tables.window_files(collection.data_type)],
            )
            gap = _print_ledger(collection.data_type, lines, args, out, first=n == 0) or gap
            if collection.ocsf_key is None:
                continue
            # Its OCSF view (WIZ_OCSF): the same windows, in the view's own files.
            lines = ocsf_ledger(
                instance,
                ocsf_output,
                collection,
                now=now,
                lag=lag,
                start=start,
                end=end,
                gaps_only=args.gaps_only,
                manifest_output=output,
                tables=tables,
            )
            gap = _print_ledger(f"ocsf/{collection.data_type}", lines, args, out, first=False) or gap
    return 1 if gap else 0


def _print_ledger(
    name: str, lines: Iterator[WindowLine], args: argparse.Namespace, out: TextIO, *, first: bool
) -> bool:
    """Print one data type's (or view's) window lines and verdict; whether the range has a gap."""
    from wiz_pipeline.readers.ledger import (
        Summary,
        json_line,
        json_summary,
        text_header,
        text_line,
        text_summary,
    )

    summary = Summary(name)
    if not args.json:
        print(("" if first else "\n") + text_header(), file=out)
    for line in lines:
        summary.note(line)
        if line.written and args.gaps_only:
            continue
        out.write((json_line(line) if args.json else text_line(line)) + "\n")
    print(json_summary(summary) if args.json else text_summary(summary), file=out)
    return bool(summary.gaps)


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
            f"{'it' if len(missing) == 1 else 'them'} from the environment "
            "(see docs/deploying.md, PostgreSQL)"
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


def cmd_iceberg_register(args: argparse.Namespace) -> int:
    """Rebuild the Iceberg catalog's entries from the tables' metadata files."""
    from wiz_pipeline.collect.current import state_of
    from wiz_pipeline.landing.iceberg_maintenance import register_tables
    from wiz_pipeline.landing.outputs import open_output
    from wiz_pipeline.ocsf import CLASSES
    from wiz_pipeline.ocsf.layout import table_name
    from wiz_pipeline.settings import load_settings, open_tables

    settings = load_settings()
    if not settings.iceberg:
        raise WizConfigError("WIZ_ICEBERG is not true: there are no tables to register.")
    output = open_output(settings.output_uri)
    ocsf = open_output(settings.ocsf_output_uri, "WIZ_OCSF_URI")
    datasets = [(name, output, name) for name in DATA_TYPES]
    datasets += [
        (state_of(dt).dataset, output, state_of(dt).dataset) for dt in DATA_TYPES.values() if dt.current
    ]
    datasets += [(table_name(c), ocsf, c) for c in CLASSES]
    tables = open_tables(settings)
    done = register_tables(tables, datasets)
    for name, what in done:
        print(f"{tables.namespace}.{name}: {what}")
    if not done:
        print(f"no table metadata under {settings.output_uri} or {settings.ocsf_output_uri}")
    return 0


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
        description=(
            "Collect Wiz audit logs, issues, vulnerability findings, configuration findings and "
            "detections into Parquet, orchestrated by Dagster."
        ),
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
    add_serve_arguments(sim)
    sim.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO")
    add_tenant_arguments(sim)
    sim.set_defaults(func=serve)

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
    demo.add_argument(
        "--iceberg",
        action="store_true",
        help="also register every dataset as an Iceberg table (WIZ_ICEBERG=true, the default SQLite "
        "catalog) and report each table's snapshot; the questions then read the tables",
    )
    add_tenant_arguments(demo)
    # The simulator and the sandbox default to no findings; the demo shows every data type.
    for action in demo._actions:
        if action.dest in DEMO_FINDINGS:
            action.default = DEMO_FINDINGS[action.dest]
            action.help = (action.help or "").replace("(default 0)", f"(default {action.default})")
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
    add_tenant_arguments(dev)
    dev.set_defaults(func=cmd_dev)

    checkpoints = sub.add_parser(
        "checkpoints",
        help="print AUDIT_SINCE_TIME and ISSUES_SINCE_TIME as derived from the Dagster instance",
        description="Read $DAGSTER_HOME's instance and print each data type's checkpoint: the end of the "
        "longest run of written windows from its seed. Uses the same WIZ_* settings as the pipeline. "
        "With WIZ_OCSF, each OCSF view's written windows follow its checkpoint's line, and how many it "
        "is behind its source. "
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
        "one line per data type saying whether the range has a gap. With WIZ_OCSF, each data type's OCSF "
        "view (ocsf/<type>: its class files under WIZ_OCSF_URI) is reported after it the same way. Exit 0: "
        "no gap; 1: a closed window is not written; 2: a usage or setting error.",
    )
    ledger.add_argument(
        "--type",
        choices=list(DATA_TYPES),
        help="one data type, and its OCSF view with WIZ_OCSF (default: every collected one)",
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

    iceberg = sub.add_parser(
        "iceberg",
        help="WIZ_ICEBERG's tables: rebuild a lost catalog",
        description="WIZ_ICEBERG's tables (docs/iceberg.md).",
    )
    iceberg_sub = iceberg.add_subparsers(dest="iceberg_command", required=True)
    register = iceberg_sub.add_parser(
        "register",
        help="register every table whose metadata is under WIZ_OUTPUT_URI / WIZ_OCSF_URI in the catalog",
        description="Rebuild a lost (or moved) catalog: for each dataset folder with an _iceberg_metadata/ "
        "folder, register its newest metadata file in the WIZ_ICEBERG_CATALOG_* catalog (pyiceberg's "
        "register_table), under WIZ_ICEBERG_NAMESPACE. A table already in the catalog is left as it is "
        "and said so.",
    )
    register.set_defaults(func=cmd_iceberg_register)

    settings = sub.add_parser(
        "settings",
        help="print every setting, its default and meaning",
        description="Print every environment variable wiz-pipeline reads (name, default, meaning), then "
        "those read by Dagster and the AWS SDK: the tables of docs/configuration.md.",
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
