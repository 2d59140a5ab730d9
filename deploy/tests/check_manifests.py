#!/usr/bin/env python3
"""Render every kustomize overlay, validate it against the Kubernetes schemas
offline, and check the rules Quartet's deployment promises (docs/operations.md):

- the "restricted" Pod Security Standard on every pod;
- native gRPC startup, readiness and liveness probes on the health port;
- resource requests and limits;
- a graceful shutdown that fits: terminationGracePeriodSeconds above
  QUARTET_SHUTDOWN_DELAY + QUARTET_DRAIN_TIMEOUT, a non-zero delay, no preStop hook;
- ingress exactly as designed: the gateway's text ports from anywhere, the gRPC
  ports from the namespace only, metrics from the monitoring namespace only,
  nothing else;
- backends that match the replica count (redb: one process; chat: NATS to span
  replicas), Services that reach a container port, autoscalers that own replicas,
  disruption budgets and spread where there are several replicas.

It also checks deploy/compose.yaml as Docker Compose normalizes it (`docker compose
config`): the same container hardening, the backends, the gateway's ports.

Usage: check_manifests.py [OVERLAY_DIR...]   (default: every deploy/k8s/overlays/*)
Environment: KUBECTL (default "kubectl"); DOCKER_COMPOSE (a docker-compose v2
binary; default "docker compose"; when neither exists the compose check is
skipped, or fails under CI=true); QUARTET_K8S_VERSIONS (schema versions, default
"1.27.0 1.37.0": the oldest Kubernetes these manifests support and the newest
schema at hand).

Exit status: 0 when everything passes, 1 otherwise (each violation printed).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "deploy" / "k8s" / "overlays"

# The oldest Kubernetes the manifests rely on (native gRPC probes are GA in 1.27,
# as are matchLabelKeys and unhealthyPodEvictionPolicy as beta-on-by-default) and
# the newest schema kubernetes-validate ships.
DEFAULT_K8S_VERSIONS = ("1.27.0", "1.37.0")

# Every workload the suite deploys, and the only port each lets in from outside its
# namespace (DESIGN.md's port table).
SERVICES = ("transform", "database", "weather", "chat", "gateway")
GRPC_PORTS = {"transform": 50051, "database": 50052, "weather": 50053, "chat": 50054}
GATEWAY_TEXT_PORTS = {("TCP", 7001), ("TCP", 7002), ("TCP", 7003), ("TCP", 7004), ("UDP", 7004)}
METRICS_PORT = 9090
MONITORING_NAMESPACE = "monitoring"

# Seconds a process gets to exit after its drain (flushing logs and traces).
EXIT_MARGIN_SECONDS = 2

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


# ---------------------------------------------------------------------------
# Rendering and schema validation


def render(overlay: Path) -> list[dict]:
    """The documents `kubectl kustomize OVERLAY` prints."""
    kubectl = os.environ.get("KUBECTL", "kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def schema_violations(docs: list[dict], versions: Iterable[str]) -> list[str]:
    """Strict validation (unknown fields are errors) against each Kubernetes version."""
    import kubernetes_validate  # imported here so the rules can be used without it

    problems = []
    for version in versions:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(part) for part in error.path)
                problems.append(f"{name_of(doc)}: schema {version}: {where}: {error.message}")
            except Exception as error:  # unknown kind or version: as bad as invalid
                message = getattr(error, "message", str(error))
                problems.append(f"{name_of(doc)}: schema {version}: {message}")
    return problems


# ---------------------------------------------------------------------------
# Reading the rendered objects


def name_of(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec", {})
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"].get("spec", {})
    if kind in WORKLOAD_KINDS:
        return doc["spec"]["template"].get("spec", {})
    return None


def pod_labels(doc: dict) -> dict:
    if doc.get("kind") == "Pod":
        return doc.get("metadata", {}).get("labels", {}) or {}
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {}).get("labels", {}) or {}
    return doc["spec"]["template"].get("metadata", {}).get("labels", {}) or {}


def workloads(docs: list[dict]) -> Iterator[dict]:
    return (doc for doc in docs if doc.get("kind") in WORKLOAD_KINDS)


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", []) or []) + list(spec.get("containers", []) or [])


def find(docs: list[dict], kind: str, name: str) -> dict | None:
    for doc in docs:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    return None


def workload_named(docs: list[dict], name: str) -> dict | None:
    for doc in workloads(docs):
        if doc["metadata"]["name"] == name:
            return doc
    return None


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector matching labels (an empty selector matches everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def environment(container: dict, docs: list[dict]) -> dict[str, str | None]:
    """The container's environment as the kubelet builds it: envFrom ConfigMaps
    (from the same render), then env. Values from Secrets or fields are None."""
    values: dict[str, str | None] = {}
    for source in container.get("envFrom", []) or []:
        ref = source.get("configMapRef")
        if ref:
            config = find(docs, "ConfigMap", ref["name"])
            if config:
                values.update({source.get("prefix", "") + k: v for k, v in (config.get("data") or {}).items()})
        if source.get("secretRef"):
            values["<secret>"] = None
    for variable in container.get("env", []) or []:
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        else:
            reference = variable.get("valueFrom", {})
            config_ref = reference.get("configMapKeyRef")
            if config_ref:
                config = find(docs, "ConfigMap", config_ref["name"])
                values[variable["name"]] = (config or {}).get("data", {}).get(config_ref["key"])
            else:
                values[variable["name"]] = None
    return values


def seconds(duration: str | None) -> float:
    """A humantime duration as the servers parse it: "5s", "1m 30s", "250ms"."""
    if duration is None:
        raise ValueError("not set")
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", duration.strip())
    if not parts or re.sub(r"[\d.\sa-z]", "", duration.strip()):
        raise ValueError(f"cannot read duration {duration!r}")
    for number, unit in parts:
        if unit not in units:
            raise ValueError(f"unknown unit in {duration!r}")
        total += float(number) * units[unit]
    return total


def replica_counts(doc: dict, docs: list[dict]) -> tuple[int, int]:
    """(fewest, most) replicas a workload can run, counting its autoscaler."""
    autoscaler = autoscaler_for(doc, docs)
    if autoscaler:
        spec = autoscaler["spec"]
        return spec.get("minReplicas", 1), spec["maxReplicas"]
    count = doc.get("spec", {}).get("replicas", 1)
    return count, count


def autoscaler_for(doc: dict, docs: list[dict]) -> dict | None:
    for candidate in docs:
        if candidate.get("kind") != "HorizontalPodAutoscaler":
            continue
        target = candidate["spec"]["scaleTargetRef"]
        if target["kind"] == doc["kind"] and target["name"] == doc["metadata"]["name"]:
            return candidate
    return None


# ---------------------------------------------------------------------------
# The rules: each takes the rendered documents and returns its violations.


@dataclass(frozen=True)
class Rule:
    name: str
    check: Callable[[list[dict]], list[str]]


def rule_pod_security_restricted(docs: list[dict]) -> list[str]:
    """The restricted Pod Security Standard, plus a read-only root filesystem."""
    problems = []
    for doc in workloads(docs):
        spec = pod_spec(doc) or {}
        pod = spec.get("securityContext", {}) or {}
        where = name_of(doc)
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                problems.append(f"{where}: {flag} is set")
        for volume in spec.get("volumes", []) or []:
            if "hostPath" in volume:
                problems.append(f"{where}: volume {volume['name']} is a hostPath")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false (the servers call no API)")
        for container in containers(spec):
            context = container.get("securityContext", {}) or {}
            at = f"{where} container {container['name']}"
            non_root = context.get("runAsNonRoot", pod.get("runAsNonRoot"))
            if non_root is not True:
                problems.append(f"{at}: runAsNonRoot is not true")
            if context.get("runAsUser", pod.get("runAsUser")) == 0:
                problems.append(f"{at}: runAsUser is 0")
            seccomp = (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{at}: seccompProfile is {seccomp!r}, not RuntimeDefault")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{at}: privileged")
            capabilities = context.get("capabilities", {}) or {}
            if "ALL" not in (capabilities.get("drop") or []):
                problems.append(f"{at}: capabilities do not drop ALL")
            if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
                problems.append(f"{at}: adds capabilities {capabilities['add']}")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem is not true")
            for port in container.get("ports", []) or []:
                if port.get("hostPort"):
                    problems.append(f"{at}: hostPort {port['hostPort']}")
    return problems


def rule_grpc_probes(docs: list[dict]) -> list[str]:
    """Native gRPC startup, readiness and liveness probes on the container's grpc port."""
    problems = []
    for doc in workloads(docs):
        for container in (pod_spec(doc) or {}).get("containers", []):
            at = f"{name_of(doc)} container {container['name']}"
            grpc_ports = {p["containerPort"] for p in container.get("ports", []) or [] if p.get("name") == "grpc"}
            if len(grpc_ports) != 1:
                problems.append(f"{at}: needs exactly one container port named grpc (the health service)")
                continue
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if not probe:
                    problems.append(f"{at}: no {kind}")
                elif "grpc" not in probe:
                    problems.append(f"{at}: {kind} is not a native gRPC probe")
                elif probe["grpc"].get("port") not in grpc_ports:
                    problems.append(f"{at}: {kind} probes port {probe['grpc'].get('port')}, not the grpc port")
    return problems


def rule_resources(docs: list[dict]) -> list[str]:
    """CPU and memory requests and limits on every container, requests within limits."""
    problems = []
    for doc in workloads(docs):
        for container in containers(pod_spec(doc) or {}):
            at = f"{name_of(doc)} container {container['name']}"
            resources = container.get("resources", {}) or {}
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(section) or {}):
                        problems.append(f"{at}: no {resource} in resources.{section}")
            for resource in ("cpu", "memory"):
                request = (resources.get("requests") or {}).get(resource)
                limit = (resources.get("limits") or {}).get(resource)
                if request is not None and limit is not None and quantity(request) > quantity(limit):
                    problems.append(f"{at}: {resource} request {request} above its limit {limit}")
    return problems


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("250m", "1", "128Mi") as a number."""
    text = str(value)
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def rule_graceful_shutdown(docs: list[dict]) -> list[str]:
    """The servers' own shutdown (NOT_SERVING, delay, drain) fits in the grace period."""
    problems = []
    for doc in workloads(docs):
        spec = pod_spec(doc) or {}
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for container in spec.get("containers", []):
            at = f"{name_of(doc)} container {container['name']}"
            if (container.get("lifecycle") or {}).get("preStop"):
                problems.append(f"{at}: has a preStop hook; the servers handle SIGTERM themselves")
            env = environment(container, docs)
            try:
                delay = seconds(env.get("QUARTET_SHUTDOWN_DELAY"))
                drain = seconds(env.get("QUARTET_DRAIN_TIMEOUT", "10s"))
            except ValueError as error:
                problems.append(f"{at}: QUARTET_SHUTDOWN_DELAY/QUARTET_DRAIN_TIMEOUT: {error}")
                continue
            if delay <= 0:
                problems.append(f"{at}: QUARTET_SHUTDOWN_DELAY is 0: calls fail while endpoints update")
            if grace < delay + drain + EXIT_MARGIN_SECONDS:
                problems.append(
                    f"{at}: terminationGracePeriodSeconds {grace} is below shutdown delay {delay:g}s"
                    f" + drain {drain:g}s + {EXIT_MARGIN_SECONDS}s"
                )
            liveness = container.get("livenessProbe") or {}
            window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
            if liveness and window <= delay + drain:
                problems.append(
                    f"{at}: liveness fails after {window}s of NOT_SERVING, within the shutdown"
                    f" ({delay + drain:g}s): a draining pod would be restarted"
                )
    return problems


def rule_images_pinned(docs: list[dict]) -> list[str]:
    """Images carry a tag or digest other than latest."""
    problems = []
    for doc in workloads(docs):
        for container in containers(pod_spec(doc) or {}):
            image = container.get("image", "")
            last = image.rsplit("/", 1)[-1]
            if "@sha256:" in image:
                continue
            if ":" not in last or last.endswith(":latest"):
                problems.append(f"{name_of(doc)} container {container['name']}: image {image!r} is not pinned")
    return problems


def ingress_sources(docs: list[dict], namespace: str | None, labels: dict, container: dict,
                    port: dict) -> set[str]:
    """Who the NetworkPolicies let reach this container port: "anywhere",
    "namespace" (pods of the pod's namespace), "namespace:NAME", "pods:SELECTOR",
    or "ipBlock:CIDR"; empty when nothing may."""
    sources: set[str] = set()
    isolated = False
    for policy in docs:
        if policy.get("kind") != "NetworkPolicy":
            continue
        if policy.get("metadata", {}).get("namespace") != namespace:
            continue
        spec = policy["spec"]
        if not selects(spec.get("podSelector", {}), labels):
            continue
        types = spec.get("policyTypes") or (["Ingress"] if "egress" not in spec else ["Ingress", "Egress"])
        if "Ingress" not in types:
            continue
        isolated = True
        for rule in spec.get("ingress", []) or []:
            if not port_matches(rule.get("ports"), container, port):
                continue
            peers = rule.get("from")
            if not peers:
                sources.add("anywhere")
                continue
            for peer in peers:
                if "ipBlock" in peer:
                    sources.add(f"ipBlock:{peer['ipBlock']['cidr']}")
                elif "namespaceSelector" in peer:
                    selector = peer["namespaceSelector"]
                    name = (selector.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                    rest = {k: v for k, v in (selector.get("matchLabels") or {}).items()
                            if k != "kubernetes.io/metadata.name"}
                    if name and not rest and not selector.get("matchExpressions"):
                        sources.add(f"namespace:{name}")
                    else:
                        sources.add(f"namespaces:{selector}")
                elif peer.get("podSelector") == {}:
                    sources.add("namespace")
                else:
                    sources.add(f"pods:{peer.get('podSelector')}")
    if not isolated:
        return {"anywhere (no policy selects the pod)"}
    return sources


def port_matches(rule_ports: list[dict] | None, container: dict, port: dict) -> bool:
    if not rule_ports:
        return True
    protocol = port.get("protocol", "TCP")
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted = rule_port.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if wanted == port.get("name"):
                return True
            continue
        end = rule_port.get("endPort", wanted)
        if wanted <= port["containerPort"] <= end:
            return True
    return False


def expected_sources(workload: str, port: dict) -> set[str]:
    """The ingress the design allows for a container port (docs/operations.md)."""
    protocol, number = port.get("protocol", "TCP"), port["containerPort"]
    if workload == "gateway" and (protocol, number) in GATEWAY_TEXT_PORTS:
        return {"anywhere"}
    if port.get("name") == "metrics":
        return {f"namespace:{MONITORING_NAMESPACE}"}
    if port.get("name") == "grpc" and workload in GRPC_PORTS:
        return {"namespace"}
    # The gateway's health port: only the kubelet, which policies do not govern.
    return set()


def rule_network_policies(docs: list[dict]) -> list[str]:
    """Ingress exactly as designed, with a default deny under it."""
    problems = []
    namespaces = {doc.get("metadata", {}).get("namespace") for doc in workloads(docs)}
    for namespace in namespaces:
        default_deny = [
            policy for policy in docs
            if policy.get("kind") == "NetworkPolicy"
            and policy.get("metadata", {}).get("namespace") == namespace
            and policy["spec"].get("podSelector") == {}
            and "Ingress" in (policy["spec"].get("policyTypes") or [])
            and not policy["spec"].get("ingress")
        ]
        if not default_deny:
            problems.append(f"namespace {namespace}: no default-deny ingress NetworkPolicy")
    for doc in workloads(docs):
        workload = doc["metadata"]["name"]
        namespace = doc.get("metadata", {}).get("namespace")
        labels = pod_labels(doc)
        for container in (pod_spec(doc) or {}).get("containers", []):
            for port in container.get("ports", []) or []:
                actual = ingress_sources(docs, namespace, labels, container, port)
                wanted = expected_sources(workload, port)
                if actual != wanted:
                    label = f"{port.get('protocol', 'TCP')} {port['containerPort']} ({port.get('name')})"
                    problems.append(
                        f"{name_of(doc)} port {label}: ingress allowed from {sorted(actual) or 'nobody'},"
                        f" designed {sorted(wanted) or 'nobody'}"
                    )
    return problems


def rule_services_reach_pods(docs: list[dict]) -> list[str]:
    """Every Service selects pods and each of its ports lands on a container port."""
    problems = []
    for service in docs:
        if service.get("kind") != "Service":
            continue
        selector = service["spec"].get("selector")
        if not selector:
            problems.append(f"{name_of(service)}: no selector")
            continue
        targets = [doc for doc in workloads(docs) if selects({"matchLabels": selector}, pod_labels(doc))]
        if not targets:
            problems.append(f"{name_of(service)}: selects no workload")
            continue
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            protocol = port.get("protocol", "TCP")
            for doc in targets:
                found = any(
                    (p.get("name") == target or p["containerPort"] == target)
                    and p.get("protocol", "TCP") == protocol
                    for container in (pod_spec(doc) or {}).get("containers", [])
                    for p in container.get("ports", []) or []
                )
                if not found:
                    problems.append(f"{name_of(service)} port {port.get('name')}: no {protocol} container port {target!r} in {name_of(doc)}")
    gateway = find(docs, "Service", "gateway")
    if gateway is None:
        problems.append("Service/gateway: missing")
    else:
        exposed = {(p.get("protocol", "TCP"), p["port"]) for p in gateway["spec"]["ports"]}
        if exposed != GATEWAY_TEXT_PORTS:
            problems.append(f"Service/gateway: exposes {sorted(exposed)}, not the text ports {sorted(GATEWAY_TEXT_PORTS)}")
    return problems


def rule_every_service_deployed(docs: list[dict]) -> list[str]:
    """All five services, the database as a StatefulSet with a headless governing Service."""
    problems = []
    for name in SERVICES:
        doc = workload_named(docs, name)
        if doc is None:
            problems.append(f"{name}: not deployed")
        elif name == "database" and doc["kind"] != "StatefulSet":
            problems.append(f"{name_of(doc)}: the database must be a StatefulSet")
        elif name != "database" and doc["kind"] != "Deployment":
            problems.append(f"{name_of(doc)}: a stateless service is a Deployment")
    database = workload_named(docs, "database")
    if database is not None and database["kind"] == "StatefulSet":
        governing = find(docs, "Service", database["spec"].get("serviceName", ""))
        if governing is None or governing["spec"].get("clusterIP") != "None":
            problems.append(f"{name_of(database)}: serviceName must name a headless Service")
    return problems


def rule_backends_fit_replicas(docs: list[dict]) -> list[str]:
    """redb allows one process per data directory; chat needs NATS to span replicas."""
    problems = []
    database = workload_named(docs, "database")
    if database is not None:
        env = environment(database["spec"]["template"]["spec"]["containers"][0], docs)
        _, most = replica_counts(database, docs)
        if "QUARTET_DATABASE_URL" not in env:
            if most > 1:
                problems.append(f"{name_of(database)}: {most} replicas on the embedded store (one process per data dir)")
            if database["kind"] != "StatefulSet" or not database["spec"].get("volumeClaimTemplates"):
                problems.append(f"{name_of(database)}: the embedded store needs a volume per replica")
            if not env.get("QUARTET_DATA_DIR"):
                problems.append(f"{name_of(database)}: QUARTET_DATA_DIR is not set to the volume")
        elif env["QUARTET_DATABASE_URL"] is not None:
            problems.append(f"{name_of(database)}: QUARTET_DATABASE_URL is a literal; it carries a password, read it from a Secret")
    chat = workload_named(docs, "chat")
    if chat is not None:
        env = environment(chat["spec"]["template"]["spec"]["containers"][0], docs)
        _, most = replica_counts(chat, docs)
        if most > 1 and "QUARTET_NATS_URL" not in env:
            problems.append(f"{name_of(chat)}: up to {most} replicas without QUARTET_NATS_URL split the rooms")
    return problems


def rule_scaling_and_disruption(docs: list[dict]) -> list[str]:
    """Autoscalers own their replica counts; several replicas get a PDB and spread."""
    problems = []
    for autoscaler in (d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        doc = find(docs, target["kind"], target["name"])
        if doc is None:
            problems.append(f"{name_of(autoscaler)}: target {target['kind']}/{target['name']} is missing")
        elif "replicas" in doc["spec"]:
            problems.append(f"{name_of(doc)}: sets replicas while {name_of(autoscaler)} owns them")
    for doc in workloads(docs):
        fewest, most = replica_counts(doc, docs)
        if most <= 1:
            continue
        labels = pod_labels(doc)
        budgets = [b for b in docs if b.get("kind") == "PodDisruptionBudget" and selects(b["spec"].get("selector"), labels)]
        if not budgets:
            problems.append(f"{name_of(doc)}: {most} replicas and no PodDisruptionBudget")
        for budget in budgets:
            spec = budget["spec"]
            if spec.get("maxUnavailable") in (0, "0%") or spec.get("minAvailable") in (fewest, "100%"):
                problems.append(f"{name_of(budget)}: allows no voluntary disruption, so node drains hang")
        constraints = (pod_spec(doc) or {}).get("topologySpreadConstraints") or []
        if not any(c.get("topologyKey") == "kubernetes.io/hostname" and selects(c.get("labelSelector"), labels)
                   for c in constraints):
            problems.append(f"{name_of(doc)}: {most} replicas without a topology spread over nodes")
    return problems


RULES = [
    Rule("pod security (restricted)", rule_pod_security_restricted),
    Rule("gRPC probes", rule_grpc_probes),
    Rule("resources", rule_resources),
    Rule("graceful shutdown", rule_graceful_shutdown),
    Rule("pinned images", rule_images_pinned),
    Rule("network policies", rule_network_policies),
    Rule("services reach pods", rule_services_reach_pods),
    Rule("every service deployed", rule_every_service_deployed),
    Rule("backends fit replicas", rule_backends_fit_replicas),
    Rule("scaling and disruption", rule_scaling_and_disruption),
]


def rule_violations(docs: list[dict]) -> list[str]:
    problems = []
    for rule in RULES:
        problems.extend(f"[{rule.name}] {problem}" for problem in rule.check(copy.deepcopy(docs)))
    return problems


# ---------------------------------------------------------------------------
# Per-overlay expectations from the deploy issue


def overlay_expectations(overlay: str, docs: list[dict]) -> list[str]:
    problems = []
    if overlay == "dev":
        for name in SERVICES:
            doc = workload_named(docs, name)
            if doc is not None and replica_counts(doc, docs) != (1, 1):
                problems.append(f"dev: {name_of(doc)} runs {replica_counts(doc, docs)} replicas, not one")
        for name, variable in (("database", "QUARTET_DATABASE_URL"), ("chat", "QUARTET_NATS_URL")):
            doc = workload_named(docs, name)
            if doc is not None and variable in environment(pod_spec(doc)["containers"][0], docs):
                problems.append(f"dev: {name} sets {variable}; dev runs the embedded backends")
    if overlay == "production":
        for name in ("chat", "database"):
            doc = workload_named(docs, name)
            if doc is not None and replica_counts(doc, docs)[0] < 2:
                problems.append(f"production: {name_of(doc)} runs fewer than two replicas")
        for name in ("transform", "weather", "chat", "gateway"):
            doc = workload_named(docs, name)
            if doc is not None and autoscaler_for(doc, docs) is None:
                problems.append(f"production: {name_of(doc)} has no HorizontalPodAutoscaler")
        database = workload_named(docs, "database")
        if database is not None:
            url = [v for v in pod_spec(database)["containers"][0].get("env", []) if v["name"] == "QUARTET_DATABASE_URL"]
            if not url or "secretKeyRef" not in url[0].get("valueFrom", {}):
                problems.append("production: QUARTET_DATABASE_URL does not come from a Secret")
    return problems


def check_overlay(overlay: Path, versions: Iterable[str]) -> list[str]:
    docs = render(overlay)
    return (
        schema_violations(docs, versions)
        + rule_violations(docs)
        + overlay_expectations(overlay.name, docs)
    )


# ---------------------------------------------------------------------------
# Docker Compose

COMPOSE_FILE = REPO / "deploy" / "compose.yaml"


def compose_command() -> list[str] | None:
    """A Docker Compose v2 command, or None when this machine has none."""
    configured = os.environ.get("DOCKER_COMPOSE")
    if configured:
        return configured.split()
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    except FileNotFoundError:
        return None
    return ["docker", "compose"] if probe.returncode == 0 else None


def render_compose(command: list[str]) -> dict:
    """compose.yaml as Compose normalizes it (anchors merged, ranges expanded)."""
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker compose config failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def compose_violations(config: dict) -> list[str]:
    """Every Quartet container built from our Dockerfile and hardened as in
    Kubernetes; PostgreSQL behind the database, NATS JetStream behind chat."""
    problems = []
    services = config.get("services", {})
    for name in ("postgres", "nats"):
        if name not in services:
            problems.append(f"compose: no {name} service")
    for name in SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"compose: {name}: missing")
            continue
        at = f"compose: {name}"
        build = service.get("build") or {}
        if build.get("dockerfile") != "deploy/docker/Dockerfile" or (build.get("args") or {}).get("SERVICE") != name:
            problems.append(f"{at}: not built by deploy/docker/Dockerfile with SERVICE={name}")
        if service.get("read_only") is not True:
            problems.append(f"{at}: root filesystem is writable (read_only)")
        if "ALL" not in (service.get("cap_drop") or []):
            problems.append(f"{at}: capabilities are not all dropped")
        if service.get("cap_add"):
            problems.append(f"{at}: adds capabilities {service['cap_add']}")
        if "no-new-privileges:true" not in (service.get("security_opt") or []):
            problems.append(f"{at}: no-new-privileges is not set")
        if service.get("privileged"):
            problems.append(f"{at}: privileged")
        user = str(service.get("user", "")).split(":")[0]
        if not user.isdigit() or user == "0":
            problems.append(f"{at}: user {service.get('user')!r} is not a numeric non-root user")
        env = service.get("environment") or {}
        if env.get("QUARTET_LOG_FORMAT") != "json":
            problems.append(f"{at}: QUARTET_LOG_FORMAT is not json")
        try:
            needed = seconds(env.get("QUARTET_SHUTDOWN_DELAY", "0s")) + seconds(env.get("QUARTET_DRAIN_TIMEOUT", "10s"))
            grace = seconds(service.get("stop_grace_period", "10s"))
        except ValueError as error:
            problems.append(f"{at}: {error}")
            continue
        if grace < needed + EXIT_MARGIN_SECONDS:
            problems.append(f"{at}: stop_grace_period {grace:g}s is below shutdown delay + drain ({needed:g}s) + {EXIT_MARGIN_SECONDS}s")
    database_env = (services.get("database") or {}).get("environment") or {}
    if "@postgres:" not in str(database_env.get("QUARTET_DATABASE_URL", "")):
        problems.append("compose: database does not use the postgres service")
    chat_env = (services.get("chat") or {}).get("environment") or {}
    if not str(chat_env.get("QUARTET_NATS_URL", "")).startswith("nats://nats:"):
        problems.append("compose: chat does not use the nats service")
    nats_command = (services.get("nats") or {}).get("command") or []
    if not {"--jetstream", "-js"} & set(nats_command):
        problems.append("compose: nats runs without JetStream")
    gateway = services.get("gateway") or {}
    published = {(p.get("protocol", "tcp").upper(), int(p["target"])) for p in gateway.get("ports") or [] if p.get("published")}
    if not GATEWAY_TEXT_PORTS <= published:
        problems.append(f"compose: gateway publishes {sorted(published)}, not every text port {sorted(GATEWAY_TEXT_PORTS)}")
    return problems


def check_compose() -> tuple[str, list[str]]:
    command = compose_command()
    if command is None:
        if os.environ.get("CI") == "true":
            return "failed", ["no Docker Compose v2 (set DOCKER_COMPOSE)"]
        return "skipped (no Docker Compose v2; set DOCKER_COMPOSE)", []
    try:
        problems = compose_violations(render_compose(command))
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        problems = [f"cannot check: {error}"]
    return ("ok" if not problems else f"{len(problems)} problem(s)"), problems


def main(arguments: list[str]) -> int:
    overlays = [Path(a) for a in arguments] or sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())
    versions = os.environ.get("QUARTET_K8S_VERSIONS", " ".join(DEFAULT_K8S_VERSIONS)).split()
    failed = 0
    for overlay in overlays:
        try:
            problems = check_overlay(overlay, versions)
        except (RuntimeError, KeyError, TypeError, ValueError) as error:
            problems = [f"cannot check: {error!r}"]
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"overlay {overlay.name}: {status} (schemas {', '.join(versions)}; {len(RULES)} rules)")
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    checked = len(overlays)
    if not arguments:
        status, problems = check_compose()
        print(f"compose.yaml: {status}")
        for problem in problems:
            print(f"  {problem}")
        checked += not status.startswith("skipped")
        failed += bool(problems)
    print(f"{checked - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
