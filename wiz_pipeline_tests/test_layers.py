"""The package layers (docs/architecture.md): import-linter's contracts hold, a planted cross-link breaks
them naming both modules, the packages form no cycle, and importing a layer loads nothing above it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from wiz_pipeline_tests.test_data_types import _modules_after

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("core", "wiz", "data_types", "simulator", "landing", "collect", "readers", "orchestration", "cli")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy's wiz_pipeline, not the installed one
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_import_contracts_hold():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "named"),
    [
        # writing knows rows, not HTTP
        (
            "landing/files.py",
            "from wiz_pipeline.wiz import WizClient",
            "know rows, not HTTP",
            "wiz_pipeline.wiz",
        ),
        # the neutral ground imports no Dagster
        ("core/times.py", "import dagster", "Only orchestration", "dagster"),
        # the simulator never imports the CLI (a layer above it)
        ("simulator/server.py", "from wiz_pipeline.cli import main", "Layers", "wiz_pipeline.cli"),
        # the cycle data_types -> tables -> client -> data_types that the layers removed
        (
            "data_types/__init__.py",
            "from wiz_pipeline.landing import tables",
            "Layers",
            "wiz_pipeline.landing",
        ),
        # readers read files, never the client
        ("readers/ledger.py", "import httpx", "know rows, not HTTP", "httpx"),
    ],
)
def test_a_planted_forbidden_import_breaks_a_contract_naming_both_modules(
    tmp_path, module, line, contract, named
):
    shutil.copytree(
        ROOT / "wiz_pipeline", tmp_path / "wiz_pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    planted = tmp_path / "wiz_pipeline" / module
    text = planted.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    planted.write_text(head + sep + line + "  # noqa\n" + rest if sep else line + "\n" + text)
    done = _lint_imports(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "BROKEN" in out
    assert contract.lower() in out.lower()
    source = "wiz_pipeline." + module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert source in out and named in out, out


def test_the_packages_import_each_other_without_a_cycle():
    graph = grimp.build_graph("wiz_pipeline")
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for module in graph.modules:
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in edges:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            target = imported.split(".")
            if len(target) > 1 and target[1] in edges and target[1] != parts[1]:
                edges[parts[1]].add(target[1])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges[start])

    cycles = sorted(p for p in PACKAGES if reaches(p, p, {p}))
    assert cycles == []
    assert edges["core"] == set() and edges["wiz"] <= {"core"} and edges["data_types"] <= {"core"}
    assert edges["simulator"] <= {"core"}
    assert not any("cli" in targets for targets in edges.values())


def _loaded(modules: list[str], *prefixes: str) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_importing_the_client_loads_no_dagster_and_no_pyarrow():
    modules = _modules_after("import wiz_pipeline.wiz")
    assert "wiz_pipeline.wiz.client" in modules
    assert _loaded(modules, "dagster", "pyarrow", "wiz_pipeline.data_types", "wiz_pipeline.landing") == []


def test_importing_landing_loads_no_httpx_and_no_client():
    modules = _modules_after("import wiz_pipeline.landing, wiz_pipeline.landing.outputs.s3")
    assert "wiz_pipeline.landing.files" in modules
    assert _loaded(modules, "httpx", "wiz_pipeline.wiz", "dagster") == []


def test_importing_readers_loads_no_client():
    modules = _modules_after(
        "import wiz_pipeline.readers.ledger, wiz_pipeline.readers.analytics, wiz_pipeline.analytics"
    )
    assert "wiz_pipeline.readers.analytics" in modules
    assert _loaded(modules, "wiz_pipeline.wiz", "httpx", "dagster", "wiz_pipeline.collect") == []


def test_importing_collect_loads_no_dagster():
    modules = _modules_after("import wiz_pipeline.collect")
    assert "wiz_pipeline.collect.windows" in modules
    assert _loaded(modules, "dagster", "wiz_pipeline.orchestration") == []
