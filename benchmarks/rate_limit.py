"""What a 429 costs: requests refused and throughput when the client's rate is set above the budget.

    .venv/bin/python benchmarks/rate_limit.py [--budget 3] [--setting 5] [--requests 90]

The simulator allows ``--budget`` requests per second (answering 429 with Retry-After beyond it,
as a tenant shared with another integration would); the client is set to ``--setting``. Runs the
same load with the client's rate fixed (never lowered after a 429) and as shipped (lowered after a
429, climbing back while requests go through), with production backoff settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from datetime import UTC, datetime, timedelta

from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.wiz import WizClient, ratelimit

SECRET = "bench-secret-000000"


def run(budget: float, setting: float, requests: int, adaptive: bool) -> str:
    end = datetime(2025, 9, 13, tzinfo=UTC)
    tenant = generate_tenant(end - timedelta(hours=1), end, audit_entries=100, issues=0)
    saved = ratelimit._SLOW_DOWN
    ratelimit._SLOW_DOWN = saved if adaptive else 1.0
    try:
        with (
            WizSimulator(tenant, client_secret=SECRET, rate_limit_per_second=budget) as sim,
            WizClient(
                load_settings({}).wiz_options(
                    api_url=sim.graphql_url,
                    token_url=sim.token_url,
                    client_id=sim.client_id,
                    client_secret=SECRET,
                    max_requests_per_second=setting,
                )
            ) as client,
        ):
            client.tokens.token()
            began = time.perf_counter()
            for _ in range(requests):
                client.execute("query Ping { __typename }", {}, operation="Ping")
            seconds = time.perf_counter() - began
            refused = sim.counters.rate_limited
            sent = len(sim.graphql_records())
            final = client.limiter.current_rate
    finally:
        ratelimit._SLOW_DOWN = saved
    label = "lowered after 429" if adaptive else "fixed"
    return (
        f"{label:<18} {requests:>4} queries  {sent:>4} requests  {refused:>3} refused (429, "
        f"{refused / sent:4.0%})  {seconds:6.1f} s  {requests / seconds:5.2f} queries/s  "
        f"rate at the end {final:.2f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0, help="server's requests/second (default 3)")
    parser.add_argument("--setting", type=float, default=5.0, help="client's setting (default 5)")
    parser.add_argument("--requests", type=int, default=90)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the 429 warnings would drown the figures
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"server budget {args.budget:g}/s, client setting {args.setting:g}/s")
    for adaptive in (False, True):
        print(run(args.budget, args.setting, args.requests, adaptive))


if __name__ == "__main__":
    main()
