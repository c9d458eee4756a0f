"""The ``wiz-pipeline`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.wiz import DATA_TYPES, WizClient, WizError, fetch_window
from wiz_pipeline.wiz.urls import is_loopback_host


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
    )
    return WizSimulator(tenant, host=host, port=port, rate_limit_per_second=args.rate_limit or None)


def cmd_simulator(args: argparse.Namespace) -> int:
    if not is_loopback_host(args.host):
        print(
            f"--host {args.host}: the simulator only listens on loopback (127.0.0.1, ::1, localhost).",
            file=sys.stderr,
        )
        return 2
    sim = _simulator(args, args.host, args.port)
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
    print("Try:")
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
    """Collect the last hours window by window from a simulated tenant, and report what came back."""
    sim = _simulator(args).start()
    window = timedelta(seconds=args.window_seconds)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    end -= timedelta(seconds=end.timestamp() % args.window_seconds)
    start = end - timedelta(hours=args.hours)
    print(f"Simulated Wiz tenant at {sim.graphql_url} (rate limit {args.rate_limit:g} req/s).")
    print(
        f"Collecting {start:%Y-%m-%d %H:%M} .. {end:%H:%M} UTC "
        f"in {args.window_seconds // 60}-minute windows.\n"
    )
    print(
        f"{'data type':<11} {'window start':<17} {'rows':>5} {'pages':>5} {'reqs':>4} {'429s':>4} "
        f"{'KiB':>7} {'seconds':>7}"
    )
    totals: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    try:
        with WizClient(
            api_url=sim.graphql_url,
            token_url=sim.token_url,
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            max_requests_per_second=args.rate_limit or 3.0,
        ) as client:
            for name in ("audit_logs", "issues"):
                at = start
                while at < end:
                    fetch = fetch_window(client, DATA_TYPES[name], at, at + window)
                    for nodes in fetch:
                        totals[name] += len(nodes)
                        if name == "audit_logs":
                            actions.update(n["action"].strip() for n in nodes)
                        else:
                            severities.update(n["severity"] for n in nodes if n["status"] == "OPEN")
                    s = fetch.stats
                    print(
                        f"{name:<11} {at:%Y-%m-%d %H:%M} {s.nodes_in_window:>5} {s.requests.pages:>5} "
                        f"{s.requests.requests:>4} {s.requests.rate_limited:>4} "
                        f"{s.requests.bytes_received / 1024:>7.1f} {s.duration_seconds:>7.2f}"
                    )
                    at += window
    except WizError as exc:
        print(f"Collection failed: {exc}", file=sys.stderr)
        return 1
    finally:
        sim.stop()
    print(f"\nRows: {totals['audit_logs']} audit log entries, {totals['issues']} issue changes.")
    print("Top audit actions: " + ", ".join(f"{a} ({n})" for a, n in actions.most_common(5)))
    print("Open issues by severity: " + ", ".join(f"{s} ({n})" for s, n in severities.most_common()))
    print(
        f"Simulator: {sim.counters.graphql_requests} GraphQL requests, {sim.counters.tokens_issued} token(s) "
        f"issued, {sim.counters.rate_limited} rate-limited."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wiz-pipeline",
        description="Collect Wiz audit logs and issues into Parquet, orchestrated by Dagster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO (secrets are never logged)")
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
    sim.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO")
    _simulator_args(sim)
    sim.set_defaults(func=cmd_simulator)

    demo = sub.add_parser(
        "demo",
        help="collect a few hours from a simulated tenant and report what came back",
        description="Start the simulator, collect every window of the last --hours for both data types "
        "with the Wiz client, and print per-window figures and a short summary.",
    )
    demo.add_argument("--hours", type=float, default=6.0, help="hours to collect, up to now (default 6)")
    demo.add_argument("--window-seconds", type=int, default=1800, help="window length (default 1800)")
    _simulator_args(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
