#!/usr/bin/env python3
"""Render every kustomization Quartet ships, validate it against the Kubernetes
schemas offline, check the rules its deployment promises (docs/operations.md), and
run an independent policy scanner (checkov) over the renders and the Dockerfile.

What is rendered (each a "target"):
- each overlay (deploy/k8s/overlays/*): every service composed, with its namespace;
- each service alone (deploy/k8s/<service>), as `kubectl apply -k ... -n NS` applies
  it into an existing namespace;
- each service alone with its production component (deploy/k8s/<service>/production).

The rules, on every target:
- the "restricted" Pod Security Standard on every pod (no host namespaces, ports,
  paths or other volume types it forbids, no procMount, no unsafe sysctls), plus a
  read-only root filesystem and no service account token;
- native gRPC startup, readiness and liveness probes on the health port;
- resource requests and limits;
- a graceful shutdown that fits: terminationGracePeriodSeconds above
  QUARTET_SHUTDOWN_DELAY + QUARTET_DRAIN_TIMEOUT, a non-zero delay, no preStop hook;
- images with a tag other than latest (and, everywhere but dev, a digest);
- secrets as mounted files, never environment variables;
- network least privilege, both ways: the gateway's text ports from anywhere, each
  gRPC port from the gateway and the pods labelled as its clients only, metrics from
  the monitoring namespace only, nothing else in; out, only DNS and what each pod
  calls (the gateway's upstreams, PostgreSQL, NATS, the OTLP collector), each port
  listed (no endPort);
- QUARTET_LISTEN and QUARTET_METRICS_LISTEN on the container's grpc and metrics
  ports; the gateway's upstream addresses on the ports of the Services they name;
- Services that reach a container port; backends that match the replica count
  (redb: one process; chat: NATS to span replicas); autoscalers that own replicas,
  disruption budgets and spread where there are several replicas; every checkov
  suppression with its reason.
Composed targets (the overlays) add: all five services, the database as a
StatefulSet, one Namespace with the restricted Pod Security label holding
everything; and their own promises (dev: one replica, embedded backends;
production: several database and chat replicas, autoscalers, the database URL from
a mounted Secret, connections aged out). A service alone has no Namespace and no
namespace, and exactly its own workload.

It also checks deploy/compose.yaml as Docker Compose normalizes it (`docker compose
config`): the same container hardening, the backends, the gateway's ports.

Usage: check_manifests.py [--release] [KUSTOMIZATION_DIR...]
  (default: every overlay and every service). --release: the images must carry real
  digests (the release pipeline runs it after setting them); without it, the
  documented placeholder digest of an unreleased checkout passes.
Environment: KUBECTL (default "kubectl"); CHECKOV (default: `checkov` beside this
Python, then on PATH; without it the scan is skipped, or fails under CI=true);
DOCKER_COMPOSE (a docker-compose v2 binary; default "docker compose"; without one the
compose check is skipped, or fails under CI=true); QUARTET_K8S_VERSIONS (schema
versions, default "1.27.0 1.37.0": the oldest Kubernetes these manifests support and
the newest schema at hand).

Exit status: 0 when everything passes, 1 otherwise (each violation printed).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = K8S / "overlays"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"

# The oldest Kubernetes the manifests rely on (native gRPC probes are GA in 1.27,
# as are matchLabelKeys and unhealthyPodEvictionPolicy as beta-on-by-default) and
# the newest schema kubernetes-validate ships.
DEFAULT_K8S_VERSIONS = ("1.27.0", "1.37.0")

# Every workload the suite deploys and its gRPC port (DESIGN.md's port table).
SERVICES = ("transform", "database", "weather", "chat", "gateway")
GRPC_PORTS = {"transform": 50051, "database": 50052, "weather": 50053, "chat": 50054}
# The gateway's public doors: the text ports and the web port (HTTP and WebSockets).
GATEWAY_TEXT_PORTS = {("TCP", 7001), ("TCP", 7002), ("TCP", 7003), ("TCP", 7004), ("UDP", 7004), ("TCP", 7080)}
METRICS_PORT = 9090
MONITORING_NAMESPACE = "monitoring"
# The gateway's upstream addresses, one variable per service.
UPSTREAM_VARIABLES = {service: f"QUARTET_{service.upper()}_ADDR" for service in GRPC_PORTS}
# Pods that may call a service besides the gateway carry this label, set to "true".
CLIENT_LABEL = "quartet.io/client-of-{service}"
GATEWAY_PEER = "pods{app.kubernetes.io/name=gateway}"
# The cluster DNS: CoreDNS (or kube-dns) pods in kube-system.
DNS_PEER = "namespace:kube-system pods{k8s-app=kube-dns}"
# Backends a pod reaches when configured, and their default ports.
BACKEND_VARIABLES = {"QUARTET_NATS_URL": 4222, "QUARTET_OTLP_ENDPOINT": 4317}
POSTGRES_PORT = 5432

# Seconds a process gets to exit after its drain (flushing logs and traces).
EXIT_MARGIN_SECONDS = 2

# What an unreleased checkout carries in place of a digest (deploy/README.md,
# "Releasing"): not a digest at all, so nothing unpinned can run from it.
DIGEST_PLACEHOLDER = "sha256:set-by-release-pipeline"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

# The Pod Security Standards (restricted): the volume types it allows, and the
# sysctls the baseline profile allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


# ---------------------------------------------------------------------------
# What is rendered


@dataclass(frozen=True)
class Target:
    """One rendering: an overlay, a service alone, or a service alone with its
    production component."""

    name: str
    kind: str  # "overlay", "service" or "service+production"
    path: Path
    service: str | None = None


def targets() -> list[Target]:
    found = [Target(f"overlay {p.name}", "overlay", p)
             for p in sorted(OVERLAYS.iterdir()) if (p / "kustomization.yaml").exists()]
    for service in SERVICES:
        found.append(Target(f"service {service}", "service", K8S / service, service))
    for service in SERVICES:
        found.append(Target(f"service {service}+production", "service+production", K8S / service, service))
    return found


def target_for(directory: Path) -> Target:
    """The target a kustomization directory given on the command line stands for."""
    directory = directory.resolve()
    if directory.parent == OVERLAYS.resolve():
        return Target(f"overlay {directory.name}", "overlay", directory)
    if directory.parent == K8S.resolve() and directory.name in SERVICES:
        return Target(f"service {directory.name}", "service", directory, directory.name)
    if directory.name == "production" and directory.parent.name in SERVICES:
        service = directory.parent.name
        return Target(f"service {service}+production", "service+production", directory.parent, service)
    return Target(f"overlay {directory.name}", "overlay", directory)


def render_directory(directory: Path) -> list[dict]:
    """The documents `kubectl kustomize DIRECTORY` prints."""
    kubectl = os.environ.get("KUBECTL", "kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render(target: Target | Path) -> list[dict]:
    """The target's documents (a bare path renders as it is)."""
    if isinstance(target, Path):
        return render_directory(target)
    if target.kind != "service+production":
        return render_directory(target.path)
    # A component cannot be built alone: compose it with its service, as an
    # operator would, in a scratch kustomization (kustomize wants relative paths).
    with tempfile.TemporaryDirectory(prefix="quartet-kustomize-") as scratch:
        relative = os.path.relpath(target.path, scratch)
        Path(scratch, "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources: [{relative}]\ncomponents: [{relative}/production]\n",
            encoding="utf-8",
        )
        return render_directory(Path(scratch))


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


def main_container(doc: dict) -> dict:
    return (pod_spec(doc) or {}).get("containers", [{}])[0]


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


def listen_port(address: str) -> int:
    """The port of a socket address: "0.0.0.0:50051", "[::]:50051"."""
    _, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"no port in {address!r}")
    return int(port)


def url_port(url: str, default: int) -> int:
    """The port of a URL, or the scheme's default."""
    port = urlsplit(url).port
    return port if port is not None else default


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


def secret_mount_for(path: str, container: dict, spec: dict) -> dict | None:
    """The read-only volume mount from a Secret that holds `path`, if any."""
    secret_volumes = set()
    for volume in spec.get("volumes", []) or []:
        projected = [s for s in (volume.get("projected") or {}).get("sources", []) or []]
        if "secret" in volume or (projected and all("secret" in s for s in projected)):
            secret_volumes.add(volume["name"])
    for mount in container.get("volumeMounts", []) or []:
        inside = path.startswith(mount["mountPath"].rstrip("/") + "/")
        if inside and mount["name"] in secret_volumes and mount.get("readOnly") and not mount.get("subPath"):
            return mount
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
            kinds = set(volume) - {"name"}
            if "hostPath" in kinds:
                problems.append(f"{where}: volume {volume['name']} is a hostPath")
            elif "nfs" in kinds:
                problems.append(f"{where}: volume {volume['name']} is an nfs volume")
            elif kinds - RESTRICTED_VOLUME_TYPES:
                problems.append(f"{where}: volume {volume['name']} is of type {sorted(kinds)}, which restricted forbids")
        for sysctl in pod.get("sysctls", []) or []:
            if sysctl.get("name") not in SAFE_SYSCTLS:
                problems.append(f"{where}: unsafe sysctl {sysctl.get('name')}")
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
            if context.get("procMount", "Default") != "Default":
                problems.append(f"{at}: procMount is {context['procMount']}, not Default")
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


def images_by_digest(docs: list[dict], release: bool = False) -> list[str]:
    """Every image by digest: what the release pipeline sets. Before a release the
    documented placeholder stands in (it names no image, so nothing unpinned runs);
    in release mode it is refused too."""
    problems = []
    for doc in workloads(docs):
        for container in containers(pod_spec(doc) or {}):
            image = container.get("image", "")
            at = f"{name_of(doc)} container {container['name']}"
            if DIGEST.search(image):
                continue
            if image.endswith("@" + DIGEST_PLACEHOLDER):
                if release:
                    problems.append(f"{at}: image {image!r} still has the placeholder digest: run the release step")
                continue
            problems.append(f"{at}: image {image!r} is not pinned by digest (name:tag@sha256:...)")
    return problems


def rule_secrets_are_files(docs: list[dict]) -> list[str]:
    """No Secret reaches a container as an environment variable (they leak through
    /proc, crash reports and `kubectl describe`); the database URL comes as a file
    from a read-only Secret mount."""
    problems = []
    for doc in workloads(docs):
        spec = pod_spec(doc) or {}
        for container in containers(spec):
            at = f"{name_of(doc)} container {container['name']}"
            for source in container.get("envFrom", []) or []:
                if source.get("secretRef"):
                    problems.append(f"{at}: envFrom Secret {source['secretRef'].get('name')}: mount it as files")
            for variable in container.get("env", []) or []:
                if "secretKeyRef" in (variable.get("valueFrom") or {}):
                    problems.append(f"{at}: {variable['name']} comes from a Secret as a variable: mount it as a file")
                if variable["name"] == "QUARTET_DATABASE_URL":
                    problems.append(f"{at}: QUARTET_DATABASE_URL carries a password; mount the Secret and set QUARTET_DATABASE_URL_FILE")
            path = environment(container, docs).get("QUARTET_DATABASE_URL_FILE")
            if path is not None and secret_mount_for(path, container, spec) is None:
                problems.append(f"{at}: QUARTET_DATABASE_URL_FILE {path} is not in a read-only Secret mount (no subPath)")
    return problems


def describe_selector(selector: dict) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))
    expressions = selector.get("matchExpressions")
    return "{" + labels + (f";{expressions}" if expressions else "") + "}"


def describe_peer(peer: dict) -> str:
    """A NetworkPolicy peer in words: "anywhere", "namespace" (the pod's own),
    "pods{k=v}" (of the pod's namespace), "namespace:NAME", "namespaces{...}",
    "namespace:NAME pods{k=v}", or "ipBlock:CIDR"."""
    if "ipBlock" in peer:
        return f"ipBlock:{peer['ipBlock']['cidr']}" + (f" except {peer['ipBlock']['except']}" if peer["ipBlock"].get("except") else "")
    words = []
    if "namespaceSelector" in peer:
        selector = peer["namespaceSelector"] or {}
        labels = selector.get("matchLabels") or {}
        name = labels.get("kubernetes.io/metadata.name")
        if name and len(labels) == 1 and not selector.get("matchExpressions"):
            words.append(f"namespace:{name}")
        elif not labels and not selector.get("matchExpressions"):
            words.append("every namespace")
        else:
            words.append(f"namespaces{describe_selector(selector)}")
    if "podSelector" in peer:
        selector = peer["podSelector"] or {}
        if selector.get("matchLabels") or selector.get("matchExpressions"):
            words.append(f"pods{describe_selector(selector)}")
        elif not words:
            words.append("namespace")
    return " ".join(words) or "anywhere"


def policies_for(docs: list[dict], namespace: str | None, labels: dict, direction: str) -> list[dict] | None:
    """The NetworkPolicies that isolate a pod in one direction ("Ingress" or
    "Egress"); None when none does (everything allowed)."""
    found = []
    for policy in docs:
        if policy.get("kind") != "NetworkPolicy":
            continue
        if policy.get("metadata", {}).get("namespace") != namespace:
            continue
        spec = policy["spec"]
        if not selects(spec.get("podSelector", {}), labels):
            continue
        types = spec.get("policyTypes") or (["Ingress"] if "egress" not in spec else ["Ingress", "Egress"])
        if direction in types:
            found.append(policy)
    return found or None


def ingress_sources(docs: list[dict], namespace: str | None, labels: dict, container: dict,
                    port: dict) -> set[str]:
    """Who the NetworkPolicies let reach this container port (describe_peer's
    words); empty when nothing may."""
    policies = policies_for(docs, namespace, labels, "Ingress")
    if policies is None:
        return {"anywhere (no policy selects the pod)"}
    sources: set[str] = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []) or []:
            if not port_matches(rule.get("ports"), container, port):
                continue
            for peer in rule.get("from") or [{}]:
                sources.add(describe_peer(peer))
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
        return {GATEWAY_PEER, "pods{" + CLIENT_LABEL.format(service=workload) + "=true}"}
    # The gateway's health port: only the kubelet, which policies do not govern.
    return set()


# An egress allowance: (protocol, port, peer); None for "any" in expectations.
Egress = tuple[str, object, object]


def egress_destinations(docs: list[dict], namespace: str | None, labels: dict) -> set[Egress] | None:
    """Where the NetworkPolicies let a pod connect; None when nothing isolates it."""
    policies = policies_for(docs, namespace, labels, "Egress")
    if policies is None:
        return None
    allowed: set[Egress] = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []) or []:
            for peer in rule.get("to") or [{}]:
                for port in rule.get("ports") or [{"protocol": "any", "port": "any"}]:
                    allowed.add((port.get("protocol", "TCP"), port.get("port", "any"), describe_peer(peer)))
    return allowed


def expected_egress(doc: dict, docs: list[dict]) -> set[Egress]:
    """What a pod calls, from its own configuration: the gateway its upstreams; a
    server its configured backends (PostgreSQL, NATS, the OTLP collector); DNS for
    any of them. A backend's address is the operator's (`None`: any peer)."""
    name = doc["metadata"]["name"]
    env = environment(main_container(doc), docs)
    wanted: set[Egress] = set()
    if name == "gateway":
        for service, port in GRPC_PORTS.items():
            wanted.add(("TCP", port, f"pods{{app.kubernetes.io/name={service}}}"))
    if env.get("QUARTET_DATABASE_URL_FILE") or "QUARTET_DATABASE_URL" in env:
        wanted.add(("TCP", POSTGRES_PORT, None))
    for variable, default in BACKEND_VARIABLES.items():
        if env.get(variable):
            try:
                wanted.add(("TCP", url_port(env[variable], default), None))
            except ValueError:
                wanted.add(("TCP", default, None))
    if wanted:
        wanted |= {("UDP", 53, DNS_PEER), ("TCP", 53, DNS_PEER)}
    return wanted


def rule_network_policies(docs: list[dict]) -> list[str]:
    """Least privilege both ways: each pod isolated for ingress and egress by a
    policy of its own, ingress exactly as designed, egress exactly to what the pod
    calls, every port listed (some plugins ignore endPort)."""
    problems = []
    for policy in (d for d in docs if d.get("kind") == "NetworkPolicy"):
        for direction in ("ingress", "egress"):
            for rule in policy["spec"].get(direction, []) or []:
                for port in rule.get("ports", []) or []:
                    if "endPort" in port:
                        problems.append(f"{name_of(policy)}: {direction} port range {port['port']}-{port['endPort']}: list each port (some plugins ignore endPort)")
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
        actual_egress = egress_destinations(docs, namespace, labels)
        if actual_egress is None:
            problems.append(f"{name_of(doc)}: egress is open (no NetworkPolicy with Egress selects its pods)")
            continue
        wanted_egress = expected_egress(doc, docs)
        for protocol, port, peer in sorted(actual_egress, key=str):
            if not any(protocol == p and port == n and (w is None or peer == w) for p, n, w in wanted_egress):
                problems.append(f"{name_of(doc)}: egress allowed to {protocol} {port} at {peer}, which it does not call")
        for protocol, port, peer in sorted(wanted_egress, key=str):
            if not any(protocol == p and port == n and (peer is None or peer == w) for p, n, w in actual_egress):
                problems.append(f"{name_of(doc)}: egress to {protocol} {port} at {peer or 'its backend'} is blocked, but it calls it")
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
    if workload_named(docs, "gateway") is not None:
        gateway = find(docs, "Service", "gateway")
        if gateway is None:
            problems.append("Service/gateway: missing")
        else:
            exposed = {(p.get("protocol", "TCP"), p["port"]) for p in gateway["spec"]["ports"]}
            if exposed != GATEWAY_TEXT_PORTS:
                problems.append(f"Service/gateway: exposes {sorted(exposed)}, not the text ports {sorted(GATEWAY_TEXT_PORTS)}")
    for service in GRPC_PORTS:
        if workload_named(docs, service) is None:
            continue
        for name, headless in ((service, False), (f"{service}-headless", True)):
            found = find(docs, "Service", name)
            if found is None:
                problems.append(f"Service/{name}: missing (every gRPC service has a ClusterIP and a headless Service)")
            elif (found["spec"].get("clusterIP") == "None") != headless:
                problems.append(f"Service/{name}: {'not ' if headless else ''}headless")
    return problems


def rule_listen_addresses(docs: list[dict]) -> list[str]:
    """QUARTET_LISTEN is the container's grpc port (probes and Services use it),
    QUARTET_METRICS_LISTEN its metrics port (the scraper and policies use it)."""
    problems = []
    for doc in workloads(docs):
        for container in (pod_spec(doc) or {}).get("containers", []):
            at = f"{name_of(doc)} container {container['name']}"
            env = environment(container, docs)
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", []) or []
                     if p.get("protocol", "TCP") == "TCP"}
            for variable, name in (("QUARTET_LISTEN", "grpc"), ("QUARTET_METRICS_LISTEN", "metrics")):
                address = env.get(variable)
                if address is None:
                    problems.append(f"{at}: {variable} is not set")
                    continue
                try:
                    port = listen_port(address)
                except ValueError as error:
                    problems.append(f"{at}: {variable}: {error}")
                    continue
                if ports.get(name) != port:
                    problems.append(f"{at}: {variable} {address} is not its {name} containerPort ({ports.get(name)})")
    return problems


_UPSTREAM = re.compile(r"(?P<scheme>dns:///|https?://)(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d+))?/?")


def rule_gateway_upstreams(docs: list[dict]) -> list[str]:
    """The gateway's upstream addresses name each service's Services on the ports
    they serve: dns:/// for a headless name (every pod's address, balanced per
    call); a ClusterIP name under dns:/// resolves to one address, balancing nothing."""
    gateway = workload_named(docs, "gateway")
    if gateway is None:
        return []
    problems = []
    env = environment(main_container(gateway), docs)
    for service, variable in UPSTREAM_VARIABLES.items():
        value = env.get(variable)
        if not value:
            problems.append(f"{name_of(gateway)}: {variable} is not set")
            continue
        for address in value.split(","):
            match = _UPSTREAM.fullmatch(address.strip())
            if match is None:
                problems.append(f"{name_of(gateway)}: {variable}: cannot read {address!r}")
                continue
            host, scheme = match["host"], match["scheme"]
            port = int(match["port"]) if match["port"] else None
            name = host.split(".")[0]
            at = f"{name_of(gateway)}: {variable} {address.strip()}"
            if name not in (service, f"{service}-headless"):
                problems.append(f"{at}: names neither Service/{service} nor Service/{service}-headless")
                continue
            if port != GRPC_PORTS[service]:
                problems.append(f"{at}: port {port}, but {service} serves gRPC on {GRPC_PORTS[service]}")
            target = find(docs, "Service", name)
            if target is None:
                continue  # the gateway alone: the Service is applied with its own service
            served = {p["port"] for p in target["spec"].get("ports", [])}
            if port not in served:
                problems.append(f"{at}: Service/{name} serves {sorted(served)}, not {port}")
            if scheme == "dns:///" and target["spec"].get("clusterIP") != "None":
                problems.append(f"{at}: Service/{name} is not headless; dns:/// needs every pod's address ({service}-headless)")
            workload = workload_named(docs, service)
            if workload is not None and not selects({"matchLabels": target["spec"].get("selector") or {}}, pod_labels(workload)):
                problems.append(f"{at}: Service/{name} does not select {name_of(workload)}")
    return problems


def rule_backends_fit_replicas(docs: list[dict]) -> list[str]:
    """redb allows one process per data directory; chat needs NATS to span replicas."""
    problems = []
    database = workload_named(docs, "database")
    if database is not None:
        env = environment(main_container(database), docs)
        _, most = replica_counts(database, docs)
        if "QUARTET_DATABASE_URL_FILE" not in env and "QUARTET_DATABASE_URL" not in env:
            if most > 1:
                problems.append(f"{name_of(database)}: {most} replicas on the embedded store (one process per data dir)")
            if database["kind"] != "StatefulSet" or not database["spec"].get("volumeClaimTemplates"):
                problems.append(f"{name_of(database)}: the embedded store needs a volume per replica")
            if not env.get("QUARTET_DATA_DIR"):
                problems.append(f"{name_of(database)}: QUARTET_DATA_DIR is not set to the volume")
    chat = workload_named(docs, "chat")
    if chat is not None:
        env = environment(main_container(chat), docs)
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


_SUPPRESSION = re.compile(r"checkov\.io/skip\d+")
_SUPPRESSION_VALUE = re.compile(r"CKV2?_K8S_\d+=(?P<reason>.*)")


def rule_suppressions_explained(docs: list[dict]) -> list[str]:
    """A checkov suppression names one check and says why it does not apply."""
    problems = []
    for doc in docs:
        for key, value in ((doc.get("metadata") or {}).get("annotations") or {}).items():
            if not _SUPPRESSION.fullmatch(key):
                continue
            match = _SUPPRESSION_VALUE.fullmatch(str(value))
            if match is None or len(match["reason"].split()) < 4:
                problems.append(f"{name_of(doc)}: {key}: {value!r} is not CKV_K8S_<id>=<why it does not apply>")
    return problems


RULES = [
    Rule("pod security (restricted)", rule_pod_security_restricted),
    Rule("gRPC probes", rule_grpc_probes),
    Rule("resources", rule_resources),
    Rule("graceful shutdown", rule_graceful_shutdown),
    Rule("pinned images", rule_images_pinned),
    Rule("secrets as files", rule_secrets_are_files),
    Rule("network policies", rule_network_policies),
    Rule("services reach pods", rule_services_reach_pods),
    Rule("listen addresses", rule_listen_addresses),
    Rule("gateway upstreams", rule_gateway_upstreams),
    Rule("backends fit replicas", rule_backends_fit_replicas),
    Rule("scaling and disruption", rule_scaling_and_disruption),
    Rule("suppressions explained", rule_suppressions_explained),
]


def rule_violations(docs: list[dict]) -> list[str]:
    problems = []
    for rule in RULES:
        problems.extend(f"[{rule.name}] {problem}" for problem in rule.check(copy.deepcopy(docs)))
    return problems


# ---------------------------------------------------------------------------
# What composing every service adds, and what each overlay promises


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


def rule_namespace_restricted(docs: list[dict]) -> list[str]:
    """One Namespace, whose API server enforces the restricted Pod Security
    Standard (pod-security.kubernetes.io/enforce), holding every object."""
    namespaces = [doc for doc in docs if doc.get("kind") == "Namespace"]
    if len(namespaces) != 1:
        return [f"{len(namespaces)} Namespace objects, not one"]
    namespace = namespaces[0]["metadata"]
    problems = []
    enforce = (namespace.get("labels") or {}).get("pod-security.kubernetes.io/enforce")
    if enforce != "restricted":
        problems.append(f"Namespace/{namespace['name']}: pod-security.kubernetes.io/enforce is {enforce!r}, not 'restricted'")
    for doc in docs:
        if doc.get("kind") != "Namespace" and doc.get("metadata", {}).get("namespace") != namespace["name"]:
            problems.append(f"{name_of(doc)}: outside Namespace/{namespace['name']}")
    return problems


COMPOSED_RULES = [
    Rule("every service deployed", rule_every_service_deployed),
    Rule("namespace", rule_namespace_restricted),
]


def overlay_expectations(overlay: str, docs: list[dict], release: bool = False) -> list[str]:
    problems = [f"[{rule.name}] {p}" for rule in COMPOSED_RULES for p in rule.check(copy.deepcopy(docs))]
    if overlay == "dev":
        for name in SERVICES:
            doc = workload_named(docs, name)
            if doc is not None and replica_counts(doc, docs) != (1, 1):
                problems.append(f"dev: {name_of(doc)} runs {replica_counts(doc, docs)} replicas, not one")
        for name, variables in (("database", ("QUARTET_DATABASE_URL", "QUARTET_DATABASE_URL_FILE")),
                                ("chat", ("QUARTET_NATS_URL",))):
            doc = workload_named(docs, name)
            env = environment(main_container(doc), docs) if doc is not None else {}
            for variable in variables:
                if variable in env:
                    problems.append(f"dev: {name} sets {variable}; dev runs the embedded backends")
    if overlay == "production":
        problems += production_expectations(docs, release)
        for name in ("chat", "database"):
            doc = workload_named(docs, name)
            if doc is not None and replica_counts(doc, docs)[0] < 2:
                problems.append(f"production: {name_of(doc)} runs fewer than two replicas")
    return problems


def production_expectations(docs: list[dict], release: bool) -> list[str]:
    """What production promises of each service present: images by digest,
    autoscalers for the stateless ones, the database on PostgreSQL through a
    mounted Secret, connections aged out."""
    problems = [f"production: {p}" for p in images_by_digest(docs, release)]
    for name in ("transform", "weather", "chat", "gateway"):
        doc = workload_named(docs, name)
        if doc is not None and autoscaler_for(doc, docs) is None:
            problems.append(f"production: {name_of(doc)} has no HorizontalPodAutoscaler")
    database = workload_named(docs, "database")
    if database is not None:
        container = main_container(database)
        path = environment(container, docs).get("QUARTET_DATABASE_URL_FILE")
        if path is None or secret_mount_for(path, container, pod_spec(database) or {}) is None:
            problems.append("production: the database does not read its URL from a mounted Secret (QUARTET_DATABASE_URL_FILE)")
    for name in GRPC_PORTS:
        doc = workload_named(docs, name)
        if doc is None:
            continue
        age = environment(main_container(doc), docs).get("QUARTET_MAX_CONNECTION_AGE")
        try:
            if age is None or seconds(age) <= 0:
                raise ValueError("not set")
        except ValueError:
            problems.append(f"production: {name_of(doc)} sets no QUARTET_MAX_CONNECTION_AGE (clients behind the ClusterIP never rebalance)")
    return problems


def service_expectations(target: Target, docs: list[dict], release: bool = False) -> list[str]:
    """A service alone: exactly its workload, applied into whatever namespace the
    operator names (no Namespace, no namespace), with its own ConfigMap."""
    service = target.service or ""
    problems = []
    names = sorted(doc["metadata"]["name"] for doc in workloads(docs))
    if names != [service]:
        problems.append(f"{target.name}: renders workloads {names}, not just {service}")
    for doc in docs:
        if doc.get("kind") == "Namespace":
            problems.append(f"{target.name}: creates {name_of(doc)}; it must apply into an existing namespace")
        elif doc.get("metadata", {}).get("namespace"):
            problems.append(f"{target.name}: {name_of(doc)} is bound to namespace {doc['metadata']['namespace']}")
    workload = workload_named(docs, service)
    if workload is not None:
        read = [s["configMapRef"]["name"] for s in main_container(workload).get("envFrom", []) or [] if "configMapRef" in s]
        if not any(name.startswith(f"{service}-runtime") and find(docs, "ConfigMap", name) for name in read):
            problems.append(f"{target.name}: {name_of(workload)} does not read its own {service}-runtime ConfigMap")
    problems += [f"{target.name}: {p}" for p in images_by_digest(docs, release)]
    if target.kind == "service+production":
        problems += production_expectations(docs, release)
    return problems


def expectations(target: Target, docs: list[dict], release: bool = False) -> list[str]:
    if target.kind == "overlay":
        return overlay_expectations(target.path.name, docs, release)
    return service_expectations(target, docs, release)


# ---------------------------------------------------------------------------
# checkov: a widely used scanner, written by others, over the same renders


def checkov_command() -> list[str] | None:
    configured = os.environ.get("CHECKOV")
    if configured:
        return configured.split()
    beside = Path(sysconfig.get_path("scripts")) / "checkov"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("checkov")
    return [found] if found else None


def scan_file_name(target: Target) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", target.name) + ".yaml"


def as_applied(target: Target, docs: list[dict]) -> list[dict]:
    """The objects as the API server would get them: a service alone is applied
    with `-n NAMESPACE`, so give its namespaced objects one for the scan."""
    if target.kind == "overlay":
        return docs
    applied = copy.deepcopy(docs)
    for doc in applied:
        doc.setdefault("metadata", {}).setdefault("namespace", "applied-with-n")
    return applied


@dataclass
class ScanResult:
    passed: int
    failed: list[str]
    skipped: list[str]


def run_checkov(command: list[str], rendered: dict[Target, list[dict]]) -> tuple[dict[str, ScanResult], str | None]:
    """One checkov run over every render and the Dockerfile: results by file name
    ("Dockerfile" for the Dockerfile), or an error."""
    with tempfile.TemporaryDirectory(prefix="quartet-checkov-") as scratch:
        for target, docs in rendered.items():
            Path(scratch, scan_file_name(target)).write_text(
                yaml.safe_dump_all(as_applied(target, docs), sort_keys=False), encoding="utf-8")
        shutil.copy(DOCKERFILE, Path(scratch, "Dockerfile"))
        result = subprocess.run(
            [*command, "--directory", scratch, "--framework", "kubernetes", "dockerfile",
             "--output", "json", "--skip-download", "--soft-fail"],
            capture_output=True, text=True, check=False,
        )
    try:
        reports = json.loads(result.stdout)
    except json.JSONDecodeError:
        return {}, f"checkov printed no report (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
    results: dict[str, ScanResult] = {}

    def entry(name: str) -> ScanResult:
        return results.setdefault(name, ScanResult(0, [], []))

    for report in reports if isinstance(reports, list) else [reports]:
        checks = report.get("results", {})
        for check in checks.get("passed_checks", []):
            entry(Path(check["file_path"]).name).passed += 1
        for check in checks.get("failed_checks", []):
            entry(Path(check["file_path"]).name).failed.append(
                f"{check['check_id']} {check['check_name']} ({check['resource']})")
        for check in checks.get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            entry(Path(check["file_path"]).name).skipped.append(f"{check['check_id']} ({reason})")
    return results, None


def grouped(suppressions: list[str]) -> list[str]:
    """Suppressions once each, with how many resources they cover."""
    counts: dict[str, int] = {}
    for suppression in suppressions:
        counts[suppression] = counts.get(suppression, 0) + 1
    return [f"{s} x{n}" if n > 1 else s for s, n in counts.items()]


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
    gateway_env = gateway.get("environment") or {}
    for service, variable in UPSTREAM_VARIABLES.items():
        addresses = str(gateway_env.get(variable, "")).split(",")
        if not all(a.strip().startswith(f"http://{service}:{GRPC_PORTS[service]}") for a in addresses):
            problems.append(f"compose: gateway {variable} is {gateway_env.get(variable)!r}, not the {service} service's port")
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


# ---------------------------------------------------------------------------


def check_target(target: Target, versions: Iterable[str], release: bool) -> tuple[list[dict], list[str]]:
    docs = render(target)
    problems = schema_violations(docs, versions) + rule_violations(docs) + expectations(target, docs, release)
    return docs, problems


def main(arguments: list[str]) -> int:
    release = "--release" in arguments
    paths = [a for a in arguments if a != "--release"]
    chosen = [target_for(Path(p)) for p in paths] or targets()
    versions = os.environ.get("QUARTET_K8S_VERSIONS", " ".join(DEFAULT_K8S_VERSIONS)).split()
    outcomes: dict[Target, list[str]] = {}
    rendered: dict[Target, list[dict]] = {}
    for target in chosen:
        try:
            rendered[target], outcomes[target] = check_target(target, versions, release)
        except (RuntimeError, KeyError, TypeError, ValueError) as error:
            outcomes[target] = [f"cannot check: {error!r}"]

    # One checkov run over every render and the Dockerfile.
    scans: dict[str, ScanResult] = {}
    scan_problems: list[str] = []
    command = checkov_command()
    if command is None:
        if os.environ.get("CI") == "true":
            scan_problems = ["no checkov under CI (pip install -r deploy/tests/requirements.txt)"]
    else:
        scans, error = run_checkov(command, rendered)
        scan_problems = [error] if error else []

    checked = failed = 0

    def report(name: str, problems: list[str], detail: str, suppressed: list[str]) -> None:
        nonlocal checked, failed
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'} ({detail})")
        for problem in problems:
            print(f"  {problem}")
        for suppression in grouped(suppressed):
            print(f"  suppressed: {suppression}")
        checked += 1
        failed += bool(problems)

    for target in chosen:
        scan = scans.get(scan_file_name(target))
        detail = f"schemas {', '.join(versions)}; {len(RULES)} rules"
        problems = list(outcomes[target])
        if scan is not None:
            problems += [f"[checkov] {f}" for f in scan.failed]
            detail += f"; checkov {scan.passed} passed, {len(scan.failed)} failed, {len(scan.skipped)} suppressed"
        report(target.name, problems, detail, scan.skipped if scan else [])

    dockerfile = scans.get("Dockerfile")
    if dockerfile is not None:
        report("Dockerfile", [f"[checkov] {f}" for f in dockerfile.failed] + scan_problems,
               f"checkov {dockerfile.passed} passed, {len(dockerfile.failed)} failed,"
               f" {len(dockerfile.skipped)} suppressed", dockerfile.skipped)
    elif scan_problems:
        report("checkov", scan_problems, "the policy scan", [])
    elif command is None:
        print("checkov: skipped (no checkov; set CHECKOV)")

    if not paths:
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
