"""The simulator as a command: ``wiz-pipeline simulator`` and ``python -m wiz_pipeline.simulator``.

The tenant and serving arguments are declared here, once, and the CLI (and its demo and dev commands)
adds them to its own parsers; the simulator's own entry point needs nothing of the CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime, timedelta

from wiz_pipeline.core.urls import is_loopback_host
from wiz_pipeline.simulator.server import WizSimulator
from wiz_pipeline.simulator.tenant import generate_tenant


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


def add_tenant_arguments(parser: argparse.ArgumentParser) -> None:
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
    for flag, noun in (
        ("--vulnerability-findings", "vulnerability findings"),
        ("--configuration-findings", "configuration findings"),
        ("--detections", "detections"),
    ):
        parser.add_argument(
            flag,
            type=int,
            default=0,
            metavar="N",
            help=f"{noun} in the --days of history, ~10%% of them changing later (default 0)",
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


def simulator_from_args(args: argparse.Namespace, host: str = "127.0.0.1", port: int = 0) -> WizSimulator:
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
        vulnerability_findings=round(getattr(args, "vulnerability_findings", 0) * scale),
        configuration_findings=round(getattr(args, "configuration_findings", 0) * scale),
        detections=round(getattr(args, "detections", 0) * scale),
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


def serve(args: argparse.Namespace) -> int:
    if not is_loopback_host(args.host):
        print(
            f"--host {args.host}: the simulator only listens on loopback (127.0.0.1, ::1, localhost).",
            file=sys.stderr,
        )
        return 2
    try:
        sim = simulator_from_args(args, args.host, args.port)
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
    findings = [
        f"{count} {noun}"
        for count, noun in (
            (args.vulnerability_findings, "vulnerability findings"),
            (args.configuration_findings, "configuration findings"),
            (args.detections, "detections"),
        )
        if count
    ]
    if findings:
        print(f"  and {', '.join(findings)}")
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


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    parser.add_argument(
        "--days-ahead",
        type=_not_negative,
        default=7.0,
        help="keep producing audit entries and issue changes for this many days after start, at the "
        "same density, so a pipeline polling it has new data (default 7)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve HTTPS with this certificate chain (its key in it, or in --tls-key); clients then "
        "need the issuing CA, e.g. WIZ_CA_BUNDLE",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert, if not in that file")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wiz_pipeline.simulator",
        description="Serve a simulated Wiz tenant (OAuth token endpoint and GraphQL API) on 127.0.0.1; "
        "the same as `wiz-pipeline simulator`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    add_serve_arguments(parser)
    add_tenant_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(args)
