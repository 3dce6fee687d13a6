"""deploy/ says only what LinkFlow does: the Kubernetes overlays render (`kubectl
kustomize`) into manifests valid against the Kubernetes schemas (`kubernetes-validate`),
and they, the compose file, its `.env.example` and the Dockerfile run commands, options,
ports, paths and `LINKFLOW_*` settings that exist in the CLI, in `Settings` and in
docs/configuration.md. Images cannot be pulled here: nothing is run in a container.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import typer.main
import yaml
from prometheus_client import CollectorRegistry

from linkflow.api.routes.health import router as health_router
from linkflow.cli import app
from linkflow.config import Settings
from linkflow.observability.worker_metrics import serve_metrics
from tests.e2e._serve import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir())
K8S_VERSIONS = ("1.27.0", "1.33.0")
"""The schemas checked: an older supported release and a recent one (docs/deploy.md)."""
PROBES = {"livenessProbe": "/health/live", "readinessProbe": "/health/ready"}
SETTINGS = {f"LINKFLOW_{name.upper()}" for name in Settings.model_fields}


@cache
def _options() -> dict[str, set[str]]:
    """Each CLI command's options, from the Typer app itself."""
    group: Any = typer.main.get_command(app)
    return {name: {opt for param in command.params for opt in param.opts}
            for name, command in group.commands.items()}  # fmt: skip


def command_options(argv: list[str], where: str) -> dict[str, str]:
    """`argv` as `linkflow COMMAND --option value ...`, each part known to the CLI; the
    options it sets."""
    assert argv[:1] == ["linkflow"], f"{where}: {argv} is not a linkflow command"
    assert len(argv) >= 2, f"{where}: {argv} names no command"
    command, rest = argv[1], argv[2:]
    assert command in _options(), f"{where}: `linkflow {command}` does not exist"
    assert len(rest) % 2 == 0, f"{where}: {rest} is not option/value pairs"
    options = dict(zip(rest[::2], rest[1::2], strict=True))
    unknown = set(options) - _options()[command]
    assert not unknown, f"{where}: `linkflow {command}` has no option {sorted(unknown)}"
    return options


@cache
def _documented() -> frozenset[str]:
    """The variables docs/configuration.md names: in full, or as a row's `_SUFFIX`
    shorthand for a sibling of a name in the same row (`LINKFLOW_SMTP_HOST`, `_PORT`)."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        full = re.findall(r"LINKFLOW_[A-Z0-9_]+", line)
        names.update(full)
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", line):
            for name in full:
                cuts = [m.start() for m in re.finditer("_", name)][1:]
                names.update(name[:cut] + suffix for cut in cuts)
    return frozenset(names)


def check_setting(name: str, where: str) -> None:
    assert name in SETTINGS, f"{where}: {name} is no LinkFlow setting"
    assert name in _documented(), f"{where}: {name} is not in docs/configuration.md"


# --- Kubernetes ---------------------------------------------------------------


def render(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay as an operator runs it: with its secrets.env
    filled in (here from the example beside it)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/ensure-services.sh installs it"
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, tree)
    directory = tree / "overlays" / overlay
    shutil.copy(directory / "secrets.env.example", directory / "secrets.env")
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job"):
            yield manifest["metadata"]["name"], manifest["spec"]["template"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_valid_for_kubernetes(overlay: str, tmp_path: Path) -> None:
    manifests = render(overlay, tmp_path)
    kinds = {(m["kind"], m["metadata"]["name"].rsplit("-", 1)[0] if m["kind"] in
              ("ConfigMap", "Secret") else m["metadata"]["name"]) for m in manifests}  # fmt: skip
    assert kinds >= {
        ("Deployment", "linkflow-api"), ("Deployment", "linkflow-worker"),
        ("Deployment", "linkflow-scheduler"), ("Job", "linkflow-migrate"),
        ("HorizontalPodAutoscaler", "linkflow-worker"), ("Service", "linkflow-api"),
        ("PodDisruptionBudget", "linkflow-api"), ("PodDisruptionBudget", "linkflow-worker"),
        ("PodDisruptionBudget", "linkflow-scheduler"), ("Secret", "linkflow-secrets"),
        ("ConfigMap", "linkflow-config"),
    }, kinds  # fmt: skip
    for manifest in manifests:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_the_documented_queue_depth_autoscaler_is_valid_for_kubernetes() -> None:
    for path in (KUBERNETES / "examples").glob("*.yaml"):
        for manifest in yaml.safe_load_all(path.read_text()):
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_run_real_commands_probe_served_paths_and_read_real_settings(
    overlay: str, tmp_path: Path
) -> None:
    manifests = render(overlay, tmp_path)
    configs = {**by_kind(manifests, "ConfigMap"), **by_kind(manifests, "Secret")}
    for name, config in configs.items():
        for key in {**config.get("data", {}), **config.get("stringData", {})}:
            check_setting(key, f"{overlay}: {name}")
    secret = next(iter(by_kind(manifests, "Secret").values()))
    assert set(secret["data"]) >= {"LINKFLOW_SECRET_KEY", "LINKFLOW_ENCRYPTION_KEY",
                                   "LINKFLOW_DATABASE_URL", "LINKFLOW_REDIS_URL"}  # fmt: skip
    served = served_paths()
    commands = {}
    for name, template in pod_specs(manifests):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        (container,) = spec["containers"]
        where = f"{overlay}: {name}"
        options = command_options(container["command"], where)
        commands[name] = container["command"][1]
        requests = container["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests), f"{where}: resource requests"
        refs = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert refs <= set(configs), f"{where}: reads {refs}, rendered {set(configs)}"
        for env in container.get("env", []):
            check_setting(env["name"], where)
        if name == "linkflow-migrate":
            continue
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        listen = int(options.get("--port") or options["--metrics-port"])
        assert listen in ports.values(), f"{where}: listens on {listen}, declares {ports}"
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(listen)
        for probe, path in PROBES.items():
            check = container[probe]["httpGet"]
            assert check["path"] == path, f"{where}: {probe}"
            assert ports[check["port"]] == listen, f"{where}: {probe} on another port"
            if container["command"][1] == "api":
                assert path in served, f"{where}: the API does not serve {path}"
    assert commands == {
        "linkflow-api": "api", "linkflow-worker": "worker",
        "linkflow-scheduler": "scheduler", "linkflow-migrate": "migrate",
    }  # fmt: skip
    (hpa,) = by_kind(manifests, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "linkflow-worker"
    assert "replicas" not in by_kind(manifests, "Deployment")["linkflow-worker"]["spec"], \
        "the HPA owns the workers' count"  # fmt: skip
    pods = [t["metadata"]["labels"] for _, t in pod_specs(manifests)]
    for name, budget in by_kind(manifests, "PodDisruptionBudget").items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for labels in pods), name


def test_a_workers_and_schedulers_probe_paths_answer_on_its_metrics_port() -> None:
    """What the worker's and the scheduler's probes reach: `serve_metrics`'s server."""
    port = free_port()
    serve_metrics(CollectorRegistry(), "127.0.0.1", port)
    for path in PROBES.values():
        assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200


# --- Compose ------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def test_compose_declares_the_topology_with_health_checks_and_named_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "scheduler",
                             "proxy"}  # fmt: skip
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["scheduler"]["deploy"]["replicas"] == 2
    for name, service in services.items():
        if name == "migrate":  # runs once and exits
            assert service["healthcheck"] == {"disable": True}
            continue
        assert service["healthcheck"]["test"], name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} undeclared"
    for name in ("api", "worker", "scheduler"):
        after = services[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully", name


def test_compose_runs_real_commands_on_the_ports_its_checks_and_proxy_use() -> None:
    services = _compose()["services"]
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    (upstream,) = re.findall(r"set \$api http://api:(\d+);", nginx)
    for name in ("migrate", "api", "worker", "scheduler"):
        options = command_options(services[name]["command"], f"compose: {name}")
        if name == "migrate":
            continue
        port = options.get("--port") or options["--metrics-port"]
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/health/" in check, f"compose: {name}'s health check"
        assert services[name]["expose"] == [port], name
        if name == "api":
            assert port == upstream, "nginx proxies to another port than the API's"
    for name, service in services.items():
        for key in service.get("environment", {}):
            if key.startswith("LINKFLOW_"):
                check_setting(key, f"compose: {name}")


def test_env_example_holds_every_variable_compose_reads_and_only_real_settings() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = _env_example()
    assert interpolated <= set(example), f"missing in .env.example: {interpolated - set(example)}"
    for key in example:
        if key.startswith("LINKFLOW_") and key != "LINKFLOW_IMAGE":
            check_setting(key, "deploy/.env.example")
        else:
            assert key in interpolated, f".env.example: {key} is used by nothing"
    assert {"LINKFLOW_SECRET_KEY", "LINKFLOW_ENCRYPTION_KEY", "POSTGRES_PASSWORD"} <= set(example)


# --- Dockerfile ---------------------------------------------------------------


def test_the_image_is_multi_stage_non_root_and_checks_its_health() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2, stages
    assert all("-slim" in line for line in stages), stages
    (user,) = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert not user.startswith(("root", "0")), user
    health = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK"))
    assert "/health/live" in lines[health + 1]
    assert "/health/live" in served_paths()
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    options = command_options(json.loads(cmd[4:]), "Dockerfile CMD")
    (exposed,) = [line.split()[1] for line in lines if line.startswith("EXPOSE ")]
    assert options["--port"] == exposed
    for name in re.findall(r"\b(LINKFLOW_[A-Z0-9_]+)=", "\n".join(lines)):
        check_setting(name, "Dockerfile")


def served_paths() -> set[str]:
    return {route.path for route in health_router.routes}  # type: ignore[attr-defined]
