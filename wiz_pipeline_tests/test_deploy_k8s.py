"""The Kubernetes files in deploy/ (Dockerfile, helm/): what can be checked without a cluster.

Neither Debian nor PyPI ships `helm`, so the chart isn't rendered here: these tests read the files,
hold them to the project's settings, workspace.yaml and deploy/dagster.yaml, have Dagster load the
instance sections the chart would write, and load the code location the image serves.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import yaml

from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.settings import (
    BY_NAME,
    ENVIRONMENT,
    KNOWN_VARIABLES,
    SETTINGS,
    SettingsError,
    load_settings,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
HELM = DEPLOY / "helm"
SECRET_VARIABLES = {s.name for s in SETTINGS if s.secret} | {v.name for v in ENVIRONMENT if v.secret}


# --- reading the files ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and blank lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((DEPLOY / "Dockerfile").read_text())


def exec_form(arguments: str) -> list[str]:
    """A CMD in exec (JSON) form: no shell in between, so signals reach the code server."""
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), arguments
    return command


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword != "ENV":
            continue
        tokens = shlex.split(arguments)
        if "=" not in tokens[0]:  # the legacy `ENV NAME value` form
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            name, _, value = token.partition("=")
            env[name] = value
    return env


def image_command() -> list[str]:
    commands = [exec_form(a) for k, a in dockerfile() if k == "CMD"]
    assert commands, "the Dockerfile has no CMD"
    return commands[-1]


def grpc_location_args(command: list[str]) -> tuple[list[str], int]:
    """The arguments of `dagster api grpc` that say where the definitions are, and its port."""
    assert command[:3] == ["dagster", "api", "grpc"], command
    location: list[str] = []
    port = None
    tokens = iter(command[3:])
    for token in tokens:
        if token in ("-p", "--port"):
            port = int(next(tokens))
        elif token in ("-h", "--host"):
            next(tokens)
        else:
            location.append(token)
    assert port is not None, command
    return location, port


def values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def code_location(chart_values: dict[str, Any]) -> dict[str, Any]:
    user_deployments = chart_values["dagster-user-deployments"]
    assert user_deployments["enabled"] and user_deployments["enableSubchart"]
    (deployment,) = user_deployments["deployments"]
    return deployment


def example_secrets() -> dict[str, dict[str, str]]:
    documents = [d for d in yaml.safe_load_all((HELM / "secrets.example.yaml").read_text()) if d]
    assert all(d["kind"] == "Secret" for d in documents)
    return {d["metadata"]["name"]: d["stringData"] for d in documents}


def set_variables(node: Any) -> Iterator[tuple[str, str | None]]:
    """Every (name, value) a chart's values set as an environment variable, wherever they do: `env`
    as a list of {name, value|valueFrom} or as a map, and the run launcher's `envVars` (NAME=value)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from ((item["name"], item.get("value")) for item in value)
            elif key == "env" and isinstance(value, dict):
                yield from value.items()
            elif key == "envVars":
                for item in value:
                    name, _, text = item.partition("=")
                    yield name, text or None
            else:
                yield from set_variables(value)
    elif isinstance(node, list):
        for item in node:
            yield from set_variables(item)


def referenced_secrets(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "envSecrets":
                yield from (item["name"] for item in value)
            else:
                yield from referenced_secrets(value)
    elif isinstance(node, list):
        for item in node:
            yield from referenced_secrets(item)


def deployment_variables() -> dict[str, str | None]:
    """Every variable the deployment files set: the image's ENV, the chart values' env, and the keys of
    the Secrets the values load as environment (their values stay placeholders)."""
    variables: dict[str, str | None] = dict(dockerfile_env(dockerfile()))
    chart_values = values()
    variables.update(set_variables(chart_values))
    secrets = example_secrets()
    for name in referenced_secrets(chart_values):
        variables.update(dict.fromkeys(secrets[name]))
    return variables


def undeclared(names: set[str]) -> set[str]:
    return names - KNOWN_VARIABLES


def parses(name: str, text: str) -> bool:
    try:
        BY_NAME[name].parse(name, text)
    except SettingsError:
        return False
    return True


def code_server_env() -> dict[str, str]:
    """The settings the code server and its runs get from the values (Secrets aside)."""
    env = {name: text for name, text in set_variables(code_location(values())) if text is not None}
    # s3:// output arrives with the S3 section of issue 7; until settings.py parses it, the rest of the
    # deployment is still loaded and checked, with the local default in its place.
    if not parses("WIZ_OUTPUT_URI", "s3://bucket/prefix"):
        env.pop("WIZ_OUTPUT_URI")
    return env


def service_types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "type" and value in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
                yield value
            else:
                yield from service_types(value)
    elif isinstance(node, list):
        for item in node:
            yield from service_types(item)


def to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def chart_instance_sections(chart_values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml sections the chart writes from our values (its configmap-instance.yaml turns
    these camelCase keys into the instance's snake_case ones)."""
    daemon = chart_values["dagsterDaemon"]
    assert daemon["enabled"] and daemon["runCoordinator"]["enabled"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    # With a concurrency section the chart leaves the coordinator's own limits out (and fails if they
    # are set twice), and Dagster refuses them beside it: they belong under concurrency.runs.
    queued = daemon["runCoordinator"].get("config", {}).get("queuedRunCoordinator", {})
    assert not {"maxConcurrentRuns", "tagConcurrencyLimits", "blockOpConcurrencyLimitedRuns"} & queued.keys()
    concurrency = chart_values["concurrency"]
    assert concurrency["enabled"]
    return {
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": {
            section: {to_snake(k): v for k, v in settings.items()}
            for section, settings in concurrency.items()
            if section != "enabled"
        },
        "run_monitoring": {to_snake(k): v for k, v in daemon["runMonitoring"].items()},
        "telemetry": chart_values["telemetry"],
        **chart_values.get("additionalInstanceConfig", {}),
    }


def readme_deploying() -> str:
    """docs/deploying.md's Kubernetes section (the README's "Deploying" until it moved there)."""
    text = (ROOT / "docs" / "deploying.md").read_text()
    start = text.index("\n## Kubernetes\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def dagster_version() -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("dagster==")]
    return pin.removeprefix("dagster==")


# --- the tests -----------------------------------------------------------------------------------


def test_every_deployment_file_parses():
    for path in [*DEPLOY.glob("*.yaml"), *HELM.glob("*.yaml")]:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents and all(isinstance(d, dict) for d in documents), path
    for path in HELM.glob("*.yaml"):
        if path.name == "values.yaml":
            continue
        for manifest in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= manifest.keys(), path
            assert manifest["metadata"]["name"], path
    instructions = dockerfile()
    assert instructions[0][0] == "FROM"
    assert {"FROM", "USER", "CMD"} <= {keyword for keyword, _ in instructions}


def test_the_dockerfile_parser_reads_continuations_comments_and_env_forms():
    text = 'FROM x\n# note\nRUN a \\\n    && b\nENV A=1 B="two words"\nENV C three\nUSER 5:5\nCMD ["run"]\n'
    instructions = dockerfile_instructions(text)
    assert instructions[1] == ("RUN", "a && b")
    assert dockerfile_env(instructions) == {"A": "1", "B": "two words", "C": "three"}
    assert exec_form(instructions[-1][1]) == ["run"]


def test_the_image_is_python_slim_and_runs_as_a_fixed_non_root_user():
    instructions = dockerfile()
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(@sha256:[0-9a-f]{64})?", instructions[0][1])
    assert match and (int(match[1]), int(match[2])) >= (3, 11), instructions[0]
    # The last USER is the one CMD and every run start as; numeric, so that runAsNonRoot can check it.
    user = [arguments for keyword, arguments in instructions if keyword == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0)), user
    pod = code_location(values())["podSecurityContext"]
    assert pod["runAsNonRoot"] and pod["runAsUser"] == int(uid)
    last_user = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in instructions[last_user:])


def test_the_image_installs_the_project_with_the_k8s_extra_and_no_dev_tools():
    runs = [
        arguments for keyword, arguments in dockerfile() if keyword == "RUN" and "pip install" in arguments
    ]
    assert len(runs) == 1
    assert "[k8s]" in runs[0] and "[dev" not in runs[0] and " -e " not in runs[0]
    assert "--no-cache-dir" in runs[0]


def test_what_the_image_copies_exists_and_is_in_the_build_context():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # everything else stays out of the context (local data, instances, venvs)
    copies = [shlex.split(a) for k, a in dockerfile() if k == "COPY"]
    sources = [source for *sources, _ in copies for source in sources if not source.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists() and source.rstrip("/") in admitted, source


def test_the_image_has_no_entrypoint_to_prepend_to_the_charts_commands():
    # The chart's code server and the K8sRunLauncher's run pods give the whole command as container
    # args (`dagster api grpc ...`, `dagster api execute_run ...`); an ENTRYPOINT would come first.
    assert "ENTRYPOINT" not in {keyword for keyword, _ in dockerfile()}
    assert image_command()[0] == "dagster"


def test_every_variable_the_deployment_sets_is_a_declared_setting():
    variables = deployment_variables()
    assert {
        "WIZ_OUTPUT_URI",
        "WIZ_CLIENT_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "DAGSTER_HOME",
    } <= variables.keys()
    assert undeclared(set(variables)) == set()


def test_a_misspelt_variable_in_the_values_is_reported():
    chart_values = values()
    code_location(chart_values)["env"].append({"name": "WIZ_OUPUT_URI", "value": "s3://b/p"})
    assert undeclared({name for name, _ in set_variables(chart_values)}) == {"WIZ_OUPUT_URI"}


def test_secrets_come_only_from_kubernetes_secrets_with_placeholders():
    chart_values = values()
    assert not SECRET_VARIABLES & {name for name, _ in set_variables(chart_values)}
    secrets = example_secrets()
    referenced = set(referenced_secrets(chart_values))
    assert referenced and referenced <= secrets.keys()
    for name in referenced:
        for variable, text in secrets[name].items():
            if variable in SECRET_VARIABLES:
                assert text == "REPLACE-ME", variable
    # The PostgreSQL password: one Secret, read by Dagster's pods and by the bundled database.
    postgres_secret = chart_values["global"]["postgresqlSecretName"]
    assert chart_values["postgresql"]["existingSecret"] == postgres_secret
    assert secrets[postgres_secret]["postgresql-password"] == "REPLACE-ME"
    assert set(secrets[postgres_secret].values()) == {"REPLACE-ME"}
    assert chart_values["generatePostgresqlPasswordSecret"] is False
    assert chart_values["postgresql"]["postgresqlPassword"] == ""


def test_the_settings_the_values_give_are_valid_and_output_goes_to_s3():
    env = {name: text for name, text in set_variables(values()) if text is not None}
    assert env["WIZ_OUTPUT_URI"].startswith("s3://")
    settings = load_settings(code_server_env())
    assert settings.seeds["audit_logs"].isoformat() == "2025-09-12T21:00:09+00:00"


def test_the_image_and_the_chart_serve_the_code_location_of_the_workspace():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    expected = ["-m", entry["python_module"]]
    image_location, image_port = grpc_location_args(image_command())
    deployment = code_location(values())
    assert image_location == deployment["dagsterApiGrpcArgs"] == expected
    exposed = [int(a) for k, a in dockerfile() if k == "EXPOSE"]
    assert image_port == deployment["port"] and exposed == [image_port]


def test_the_image_entry_point_loads_the_definitions():
    location, _ = grpc_location_args(image_command())
    # The code server's environment: the values' settings, no Wiz credentials (they are read when a
    # run starts), and any S3 access kept on loopback.
    env = {k: v for k, v in os.environ.items() if k not in KNOWN_VARIABLES}
    env.update(code_server_env(), AWS_ENDPOINT_URL="http://127.0.0.1:9")
    result = subprocess.run(
        [pathlib.Path(sys.executable).with_name("dagster"), "definitions", "validate", *location],
        cwd=DEPLOY,  # not the repo root: the module must come from the installed package
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"Validation successful for code location {location[1]}" in output
    defs = build_definitions(code_server_env())
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"wiz/audit_logs", "wiz/issues", "wiz/issues_current"}
    assert {s.name for s in defs.schedules or []} == {
        "collect_audit_logs_schedule",
        "collect_issues_schedule",
        "collect_issues_current_schedule",
    }


def test_the_chart_values_mirror_the_deployment_instance_yaml(tmp_path):
    instance_yaml = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    sections = chart_instance_sections(values())
    for section in ("concurrency", "run_monitoring", "telemetry", "nux"):
        assert sections[section] == instance_yaml[section], section
    # Dagster itself reads what the chart would write: a misspelt key or a bad value fails here.
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(sections))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        pools = instance.get_concurrency_config().pool_config
        expected = instance_yaml["concurrency"]["pools"]
        assert (pools.pool_granularity.value, pools.default_pool_limit) == (
            expected["granularity"],
            expected["default_limit"],
        )
        assert instance.run_monitoring_enabled
        assert (
            instance.run_monitoring_max_runtime_seconds
            == instance_yaml["run_monitoring"]["max_runtime_seconds"]
        )
        assert (
            instance.run_monitoring_start_timeout_seconds
            == instance_yaml["run_monitoring"]["start_timeout_seconds"]
        )


def test_the_webserver_stays_inside_the_cluster():
    chart_values = values()
    assert chart_values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert chart_values["ingress"]["enabled"] is False
    assert not set(service_types(chart_values)) - {"ClusterIP"}
    policies = {
        p["metadata"]["name"]: p["spec"]
        for p in yaml.safe_load_all((HELM / "networkpolicy.yaml").read_text())
    }
    webserver = policies["wiz-dagster-webserver"]
    assert webserver["podSelector"]["matchLabels"]["component"] == "dagster-webserver"
    assert webserver["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"wiz-pipeline/ui-proxy": "true"}}}]}
    ]
    # The documented way in is a port-forward bound to loopback, never to every address.
    forwards = [
        line for line in readme_deploying().splitlines() if "port-forward" in line and "kubectl" in line
    ]
    assert forwards and all("--address 127.0.0.1" in line for line in forwards)
    assert "0.0.0.0" not in readme_deploying()  # noqa: S104 - looked for, not bound


@pytest.mark.parametrize("library", ["dagster-k8s", "dagster-postgres"])
def test_the_k8s_extra_and_the_chart_match_the_dagster_release(library):
    version = dagster_version()
    major, minor, patch = (int(n) for n in version.split("."))
    assert major == 1
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # Dagster's libraries are released with it as 0.(minor + 16).patch.
    assert f"{library}==0.{minor + 16}.{patch}" in pyproject["project"]["optional-dependencies"]["k8s"]
    # The chart's release is Dagster's: its webserver and daemon images carry that version.
    for text in (readme_deploying(), (HELM / "values.yaml").read_text()):
        assert f"dagster/dagster --version {version}" in text
