"""A local Wiz API (OAuth token endpoint + GraphQL) for the demo, the tests and the benchmarks.

The API's twin, built from the shared API notes rather than from the client: imports ``core`` only,
never the client (``wiz``), the data types or the CLI, so it can't agree with our code by sharing it."""

from wiz_pipeline.simulator.faults import Fault
from wiz_pipeline.simulator.server import RequestRecord, WizSimulator
from wiz_pipeline.simulator.tenant import IssueRecord, Tenant, generate_long_tenant, generate_tenant, wiz_time

__all__ = [
    "Fault",
    "IssueRecord",
    "RequestRecord",
    "Tenant",
    "WizSimulator",
    "generate_long_tenant",
    "generate_tenant",
    "wiz_time",
]
