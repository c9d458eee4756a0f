"""A local Wiz API (OAuth token endpoint + GraphQL) for the demo, the tests and the benchmarks."""

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
