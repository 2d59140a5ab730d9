"""The manifest checks must catch what they claim to: each test renders the real
overlays (or a service alone), breaks one thing the way a careless edit would, and
expects the rule to name it. A rule that passes broken manifests is worse than none.

Run: python3 -m unittest discover -s deploy/tests   (needs kubectl, PyYAML,
kubernetes-validate, checkov; see deploy/tests/requirements.txt)
"""

from __future__ import annotations

import copy
import os
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_manifests as checks  # noqa: E402

RENDERED: dict[str, list[dict]] = {}
TARGETS = {
    **{target.path.name: target for target in checks.targets() if target.kind == "overlay"},
    **{f"{t.kind}:{t.service}": t for t in checks.targets() if t.kind != "overlay"},
}


def rendered(name: str) -> list[dict]:
    """A fresh copy of a rendering (each rendered once per run): an overlay ("dev",
    "production"), a service alone ("service:weather"), or a service alone with
    its production component ("service+production:weather")."""
    if name not in RENDERED:
        RENDERED[name] = checks.render(TARGETS[name])
    return copy.deepcopy(RENDERED[name])


def workload(docs: list[dict], name: str) -> dict:
    doc = checks.workload_named(docs, name)
    assert doc is not None, f"{name} is not rendered"
    return doc


def container(docs: list[dict], name: str) -> dict:
    return workload(docs, name)["spec"]["template"]["spec"]["containers"][0]


def config_map(docs: list[dict], prefix: str) -> dict:
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith(prefix):
            return doc
    raise AssertionError(f"no ConfigMap {prefix}*")


def policy(docs: list[dict], name: str) -> dict:
    found = checks.find(docs, "NetworkPolicy", name)
    assert found is not None, f"no NetworkPolicy/{name}"
    return found


def env_var(docs: list[dict], workload_name: str, variable: str) -> dict:
    for entry in container(docs, workload_name).get("env", []):
        if entry["name"] == variable:
            return entry
    raise AssertionError(f"{workload_name} sets no {variable}")


class RenderedManifestsPass(unittest.TestCase):
    def test_every_target_passes_every_rule(self) -> None:
        for name, target in TARGETS.items():
            with self.subTest(target=name):
                docs = rendered(name)
                self.assertEqual(checks.rule_violations(docs), [])
                self.assertEqual(checks.expectations(target, docs), [])

    def test_composing_every_service_creates_no_duplicate_name(self) -> None:
        for overlay in ("dev", "production"):
            names = [(d["kind"], d["metadata"]["name"]) for d in rendered(overlay)]
            self.assertEqual(len(names), len(set(names)), overlay)


class BrokenManifestsAreCaught(unittest.TestCase):
    def assertCaught(self, rule, docs: list[dict], *fragments: str) -> None:
        problems = rule(docs)
        self.assertTrue(
            any(all(f in p for f in fragments) for p in problems),
            f"{rule.__name__} missed {fragments}; it said {problems}",
        )

    def test_root_container_is_caught(self) -> None:
        docs = rendered("production")
        del workload(docs, "transform")["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
        self.assertCaught(checks.rule_pod_security_restricted, docs, "Deployment/transform", "runAsNonRoot")

    def test_privilege_escalation_is_caught(self) -> None:
        docs = rendered("dev")
        container(docs, "gateway")["securityContext"]["allowPrivilegeEscalation"] = True
        self.assertCaught(checks.rule_pod_security_restricted, docs, "gateway", "allowPrivilegeEscalation")

    def test_kept_capabilities_are_caught(self) -> None:
        docs = rendered("production")
        container(docs, "chat")["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
        self.assertCaught(checks.rule_pod_security_restricted, docs, "chat", "drop ALL")

    def test_added_capability_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "chat")["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
        self.assertCaught(checks.rule_pod_security_restricted, docs, "chat", "SYS_ADMIN")

    def test_missing_seccomp_is_caught(self) -> None:
        docs = rendered("dev")
        del workload(docs, "database")["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
        self.assertCaught(checks.rule_pod_security_restricted, docs, "StatefulSet/database", "seccompProfile")

    def test_writable_root_filesystem_is_caught(self) -> None:
        docs = rendered("dev")
        container(docs, "weather")["securityContext"]["readOnlyRootFilesystem"] = False
        self.assertCaught(checks.rule_pod_security_restricted, docs, "weather", "readOnlyRootFilesystem")

    def test_host_path_volume_is_caught(self) -> None:
        docs = rendered("dev")
        spec = workload(docs, "weather")["spec"]["template"]["spec"]
        spec["volumes"] = [{"name": "host", "hostPath": {"path": "/"}}]
        self.assertCaught(checks.rule_pod_security_restricted, docs, "weather", "hostPath")

    def test_tcp_probe_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "weather")["readinessProbe"] = {"tcpSocket": {"port": 50053}}
        self.assertCaught(checks.rule_grpc_probes, docs, "weather", "readinessProbe", "not a native gRPC probe")

    def test_missing_startup_probe_is_caught(self) -> None:
        docs = rendered("dev")
        del container(docs, "database")["startupProbe"]
        self.assertCaught(checks.rule_grpc_probes, docs, "database", "no startupProbe")

    def test_probe_on_wrong_port_is_caught(self) -> None:
        docs = rendered("dev")
        container(docs, "transform")["livenessProbe"]["grpc"]["port"] = 9090
        self.assertCaught(checks.rule_grpc_probes, docs, "transform", "livenessProbe probes port 9090")

    def test_missing_memory_limit_is_caught(self) -> None:
        docs = rendered("production")
        del container(docs, "gateway")["resources"]["limits"]["memory"]
        self.assertCaught(checks.rule_resources, docs, "gateway", "memory in resources.limits")

    def test_request_above_limit_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "chat")["resources"]["requests"]["cpu"] = "4"
        self.assertCaught(checks.rule_resources, docs, "chat", "cpu request 4 above its limit")

    def test_grace_period_shorter_than_drain_is_caught(self) -> None:
        docs = rendered("production")
        workload(docs, "chat")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
        self.assertCaught(checks.rule_graceful_shutdown, docs, "chat", "terminationGracePeriodSeconds 10")

    def test_longer_drain_in_config_map_is_caught(self) -> None:
        docs = rendered("dev")
        config_map(docs, "chat-runtime")["data"]["QUARTET_DRAIN_TIMEOUT"] = "1m"
        self.assertCaught(checks.rule_graceful_shutdown, docs, "Deployment/chat", "drain 60s")

    def test_zero_shutdown_delay_is_caught(self) -> None:
        docs = rendered("service:weather")
        config_map(docs, "weather-runtime")["data"]["QUARTET_SHUTDOWN_DELAY"] = "0s"
        self.assertCaught(checks.rule_graceful_shutdown, docs, "QUARTET_SHUTDOWN_DELAY is 0")

    def test_pre_stop_hook_is_caught(self) -> None:
        docs = rendered("dev")
        container(docs, "transform")["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
        self.assertCaught(checks.rule_graceful_shutdown, docs, "transform", "preStop")

    def test_hasty_liveness_is_caught(self) -> None:
        docs = rendered("dev")
        container(docs, "weather")["livenessProbe"]["failureThreshold"] = 1
        self.assertCaught(checks.rule_graceful_shutdown, docs, "weather", "liveness fails after 10s")

    def test_latest_image_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "weather")["image"] = "ghcr.io/quartet-rs/quartet-weather:latest"
        self.assertCaught(checks.rule_images_pinned, docs, "weather", "not pinned")

    def test_service_without_its_own_policy_is_caught(self) -> None:
        # Alone, nothing else covers it: both directions are open.
        docs = [d for d in rendered("service:transform") if d["kind"] != "NetworkPolicy"]
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/transform", "50051", "no policy selects the pod")
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/transform", "egress is open")

    def test_grpc_open_to_everyone_is_caught(self) -> None:
        docs = rendered("production")
        del policy(docs, "database")["spec"]["ingress"][0]["from"]
        self.assertCaught(checks.rule_network_policies, docs, "StatefulSet/database", "50052", "anywhere")

    def test_grpc_open_to_the_whole_namespace_is_caught(self) -> None:
        docs = rendered("service:transform")
        policy(docs, "transform")["spec"]["ingress"][0]["from"].append({"podSelector": {}})
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/transform", "50051", "'namespace'")

    def test_grpc_closed_to_labelled_clients_is_caught(self) -> None:
        docs = rendered("dev")
        peers = policy(docs, "weather")["spec"]["ingress"][0]["from"]
        policy(docs, "weather")["spec"]["ingress"][0]["from"] = peers[:1]
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/weather", "50053", "client-of-weather")

    def test_metrics_from_any_namespace_is_caught(self) -> None:
        docs = rendered("dev")
        policy(docs, "gateway")["spec"]["ingress"][1]["from"] = [{"namespaceSelector": {}}]
        self.assertCaught(checks.rule_network_policies, docs, "gateway", "9090", "every namespace")

    def test_closed_gateway_text_port_is_caught(self) -> None:
        docs = rendered("production")
        rule = policy(docs, "gateway")["spec"]["ingress"][0]
        rule["ports"] = [p for p in rule["ports"] if p["protocol"] == "TCP"]
        self.assertCaught(checks.rule_network_policies, docs, "gateway", "UDP 7004", "nobody")

    def test_port_range_is_caught(self) -> None:
        docs = rendered("service:gateway")
        rule = policy(docs, "gateway")["spec"]["ingress"][0]
        rule["ports"] = [{"protocol": "TCP", "port": 7001, "endPort": 7004}, {"protocol": "UDP", "port": 7004}]
        self.assertCaught(checks.rule_network_policies, docs, "NetworkPolicy/gateway", "7001-7004", "endPort")

    def test_open_egress_is_caught(self) -> None:
        docs = rendered("service:weather")
        policy(docs, "weather")["spec"]["policyTypes"] = ["Ingress"]
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/weather", "egress is open")

    def test_egress_to_what_a_pod_does_not_call_is_caught(self) -> None:
        docs = rendered("production")
        policy(docs, "gateway")["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 5432}]})
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/gateway", "TCP 5432 at anywhere", "does not call")

    def test_egress_to_any_port_is_caught(self) -> None:
        docs = rendered("service:transform")
        policy(docs, "transform")["spec"]["egress"] = [{"to": [{"podSelector": {}}]}]
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/transform", "any any at namespace")

    def test_blocked_backend_is_caught(self) -> None:
        docs = [d for d in rendered("production") if d["metadata"]["name"] != "database-to-postgres"]
        self.assertCaught(checks.rule_network_policies, docs, "StatefulSet/database", "TCP 5432", "blocked")

    def test_blocked_dns_is_caught(self) -> None:
        docs = rendered("service:gateway")
        del policy(docs, "gateway")["spec"]["egress"][0]
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/gateway", "UDP 53", "kube-dns", "blocked")

    def test_blocked_upstream_is_caught(self) -> None:
        docs = rendered("dev")
        egress = policy(docs, "gateway")["spec"]["egress"]
        policy(docs, "gateway")["spec"]["egress"] = [r for r in egress if r["ports"][0]["port"] != 50054]
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/gateway", "TCP 50054", "name=chat", "blocked")

    def test_traces_without_their_egress_are_caught(self) -> None:
        docs = rendered("service:weather")
        config_map(docs, "weather-runtime")["data"]["QUARTET_OTLP_ENDPOINT"] = "http://otel-collector.monitoring:4317"
        self.assertCaught(checks.rule_network_policies, docs, "Deployment/weather", "TCP 4317", "blocked")

    def test_service_without_udp_port_is_caught(self) -> None:
        docs = rendered("production")
        service = checks.find(docs, "Service", "gateway")
        service["spec"]["ports"] = [p for p in service["spec"]["ports"] if p["protocol"] == "TCP"]
        self.assertCaught(checks.rule_services_reach_pods, docs, "Service/gateway", "not the text ports")

    def test_service_to_missing_port_is_caught(self) -> None:
        docs = rendered("dev")
        checks.find(docs, "Service", "weather")["spec"]["ports"][0]["targetPort"] = "grcp"
        self.assertCaught(checks.rule_services_reach_pods, docs, "Service/weather", "'grcp'")

    def test_database_as_deployment_is_caught(self) -> None:
        docs = rendered("dev")
        workload(docs, "database")["kind"] = "Deployment"
        self.assertCaught(checks.rule_every_service_deployed, docs, "database must be a StatefulSet")

    def test_missing_service_is_caught(self) -> None:
        docs = [d for d in rendered("dev") if d["metadata"]["name"] != "chat" or d["kind"] != "Deployment"]
        self.assertCaught(checks.rule_every_service_deployed, docs, "chat: not deployed")

    def test_two_processes_on_one_embedded_store_is_caught(self) -> None:
        docs = rendered("dev")
        workload(docs, "database")["spec"]["replicas"] = 2
        self.assertCaught(checks.rule_backends_fit_replicas, docs, "StatefulSet/database", "embedded store")

    def test_chat_replicas_without_nats_are_caught(self) -> None:
        docs = rendered("production")
        del config_map(docs, "chat-runtime")["data"]["QUARTET_NATS_URL"]
        self.assertCaught(checks.rule_backends_fit_replicas, docs, "Deployment/chat", "split the rooms")

    def test_database_password_in_manifest_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "database")["env"].append({"name": "QUARTET_DATABASE_URL", "value": "postgres://quartet:hunter2@db/quartet"})
        self.assertCaught(checks.rule_secrets_are_files, docs, "StatefulSet/database", "QUARTET_DATABASE_URL carries a password")

    def test_secret_as_environment_variable_is_caught(self) -> None:
        docs = rendered("production")
        variable = env_var(docs, "database", "QUARTET_DATABASE_URL_FILE")
        variable.pop("value")
        variable["valueFrom"] = {"secretKeyRef": {"name": "quartet-postgres", "key": "url"}}
        self.assertCaught(checks.rule_secrets_are_files, docs, "StatefulSet/database", "from a Secret as a variable")

    def test_url_file_outside_a_secret_mount_is_caught(self) -> None:
        docs = rendered("production")
        env_var(docs, "database", "QUARTET_DATABASE_URL_FILE")["value"] = "/etc/quartet/url"
        self.assertCaught(checks.rule_secrets_are_files, docs, "StatefulSet/database", "/etc/quartet/url", "Secret mount")
        self.assertTrue(any("mounted Secret" in p for p in checks.overlay_expectations("production", docs)))

    def test_replicas_beside_autoscaler_are_caught(self) -> None:
        docs = rendered("production")
        workload(docs, "gateway")["spec"]["replicas"] = 2
        self.assertCaught(checks.rule_scaling_and_disruption, docs, "Deployment/gateway", "sets replicas")

    def test_missing_disruption_budget_is_caught(self) -> None:
        docs = [d for d in rendered("production") if d["kind"] != "PodDisruptionBudget" or d["metadata"]["name"] != "database"]
        self.assertCaught(checks.rule_scaling_and_disruption, docs, "StatefulSet/database", "no PodDisruptionBudget")

    def test_budget_that_blocks_drains_is_caught(self) -> None:
        docs = rendered("production")
        checks.find(docs, "PodDisruptionBudget", "chat")["spec"]["maxUnavailable"] = 0
        self.assertCaught(checks.rule_scaling_and_disruption, docs, "PodDisruptionBudget/chat", "no voluntary disruption")

    def test_missing_spread_is_caught(self) -> None:
        docs = rendered("production")
        del workload(docs, "transform")["spec"]["template"]["spec"]["topologySpreadConstraints"]
        self.assertCaught(checks.rule_scaling_and_disruption, docs, "Deployment/transform", "topology spread")

    def test_nfs_volume_is_caught(self) -> None:
        docs = rendered("service:chat")
        spec = workload(docs, "chat")["spec"]["template"]["spec"]
        spec["volumes"] = [{"name": "shared", "nfs": {"server": "nas", "path": "/export"}}]
        self.assertCaught(checks.rule_pod_security_restricted, docs, "Deployment/chat", "shared", "nfs")

    def test_volume_type_restricted_forbids_is_caught(self) -> None:
        docs = rendered("dev")
        spec = workload(docs, "transform")["spec"]["template"]["spec"]
        spec["volumes"] = [{"name": "disk", "iscsi": {"targetPortal": "10.0.0.1", "iqn": "iqn.x", "lun": 0}}]
        self.assertCaught(checks.rule_pod_security_restricted, docs, "Deployment/transform", "disk", "iscsi")

    def test_unmasked_proc_mount_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "gateway")["securityContext"]["procMount"] = "Unmasked"
        self.assertCaught(checks.rule_pod_security_restricted, docs, "Deployment/gateway", "procMount is Unmasked")

    def test_unsafe_sysctl_is_caught(self) -> None:
        docs = rendered("production")
        context = workload(docs, "database")["spec"]["template"]["spec"]["securityContext"]
        context["sysctls"] = [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "65536"}]
        problems = checks.rule_pod_security_restricted(docs)
        self.assertCaught(checks.rule_pod_security_restricted, docs, "StatefulSet/database", "unsafe sysctl kernel.msgmax")
        self.assertFalse(any("tcp_syncookies" in p for p in problems), problems)

    def test_listen_address_off_the_grpc_port_is_caught(self) -> None:
        docs = rendered("service:weather")
        env_var(docs, "weather", "QUARTET_LISTEN")["value"] = "0.0.0.0:50099"
        self.assertCaught(checks.rule_listen_addresses, docs, "Deployment/weather", "QUARTET_LISTEN 0.0.0.0:50099", "grpc containerPort (50053)")

    def test_metrics_address_off_the_metrics_port_is_caught(self) -> None:
        docs = rendered("production")
        config_map(docs, "chat-runtime")["data"]["QUARTET_METRICS_LISTEN"] = "0.0.0.0:9100"
        self.assertCaught(checks.rule_listen_addresses, docs, "Deployment/chat", "QUARTET_METRICS_LISTEN", "(9090)")

    def test_gateway_upstream_on_another_port_is_caught(self) -> None:
        docs = rendered("production")
        env_var(docs, "gateway", "QUARTET_WEATHER_ADDR")["value"] = "dns:///weather-headless:50054"
        self.assertCaught(checks.rule_gateway_upstreams, docs, "QUARTET_WEATHER_ADDR", "port 50054", "50053")
        self.assertCaught(checks.rule_gateway_upstreams, docs, "Service/weather-headless serves [50053], not 50054")

    def test_gateway_upstream_whose_service_moved_is_caught(self) -> None:
        docs = rendered("dev")
        checks.find(docs, "Service", "chat-headless")["spec"]["ports"][0]["port"] = 60054
        self.assertCaught(checks.rule_gateway_upstreams, docs, "QUARTET_CHAT_ADDR", "Service/chat-headless serves [60054], not 50054")

    def test_gateway_alone_with_a_wrong_upstream_port_is_caught(self) -> None:
        docs = rendered("service:gateway")
        env_var(docs, "gateway", "QUARTET_TRANSFORM_ADDR")["value"] = "dns:///transform-headless:50052"
        self.assertCaught(checks.rule_gateway_upstreams, docs, "QUARTET_TRANSFORM_ADDR", "port 50052", "50051")

    def test_gateway_balancing_over_a_cluster_ip_is_caught(self) -> None:
        docs = rendered("production")
        env_var(docs, "gateway", "QUARTET_DATABASE_ADDR")["value"] = "dns:///database:50052"
        self.assertCaught(checks.rule_gateway_upstreams, docs, "QUARTET_DATABASE_ADDR", "not headless")

    def test_gateway_upstream_list_is_read_address_by_address(self) -> None:
        docs = rendered("dev")
        env_var(docs, "gateway", "QUARTET_TRANSFORM_ADDR")["value"] = "http://transform:50051,http://weather:50053"
        self.assertCaught(checks.rule_gateway_upstreams, docs, "http://weather:50053", "names neither")

    def test_missing_headless_service_is_caught(self) -> None:
        docs = [d for d in rendered("service:transform") if d["metadata"]["name"] != "transform-headless"]
        self.assertCaught(checks.rule_services_reach_pods, docs, "Service/transform-headless: missing")

    def test_tag_only_image_in_production_is_caught(self) -> None:
        docs = rendered("production")
        container(docs, "chat")["image"] = "ghcr.io/quartet-rs/quartet-chat:0.1.0"
        self.assertTrue(any("Deployment/chat" in p and "not pinned by digest" in p
                            for p in checks.overlay_expectations("production", docs)))

    def test_tag_only_image_of_a_service_alone_is_caught(self) -> None:
        docs = rendered("service:database")
        container(docs, "database")["image"] = "ghcr.io/quartet-rs/quartet-database:0.1.0"
        self.assertTrue(any("not pinned by digest" in p for p in checks.expectations(TARGETS["service:database"], docs)))

    def test_placeholder_digest_passes_until_a_release(self) -> None:
        docs = rendered("production")
        self.assertEqual(checks.images_by_digest(docs), [])
        self.assertTrue(any("placeholder" in p for p in checks.images_by_digest(docs, release=True)))
        for doc in checks.workloads(docs):
            doc["spec"]["template"]["spec"]["containers"][0]["image"] += "x"  # no longer the placeholder
        self.assertTrue(checks.images_by_digest(docs))
        real = "ghcr.io/quartet-rs/quartet-chat:0.1.0@sha256:" + "0123456789abcdef" * 4
        container(docs, "chat")["image"] = real
        self.assertFalse(any("Deployment/chat" in p for p in checks.images_by_digest(docs, release=True)))

    def test_suppression_without_a_reason_is_caught(self) -> None:
        docs = rendered("dev")
        workload(docs, "weather")["metadata"]["annotations"]["checkov.io/skip3"] = "CKV_K8S_16"
        self.assertCaught(checks.rule_suppressions_explained, docs, "Deployment/weather", "checkov.io/skip3")

    def test_namespace_without_restricted_enforcement_is_caught(self) -> None:
        docs = rendered("production")
        labels = checks.find(docs, "Namespace", "quartet")["metadata"]["labels"]
        labels["pod-security.kubernetes.io/enforce"] = "baseline"
        self.assertCaught(checks.rule_namespace_restricted, docs, "Namespace/quartet", "'baseline'", "not 'restricted'")
        del labels["pod-security.kubernetes.io/enforce"]
        self.assertCaught(checks.rule_namespace_restricted, docs, "Namespace/quartet", "None")

    def test_object_outside_the_overlay_namespace_is_caught(self) -> None:
        docs = rendered("dev")
        checks.find(docs, "Service", "weather")["metadata"]["namespace"] = "default"
        self.assertCaught(checks.rule_namespace_restricted, docs, "Service/weather", "outside Namespace/quartet-dev")

    def test_service_bound_to_a_namespace_is_caught(self) -> None:
        docs = rendered("service:weather")
        checks.find(docs, "Service", "weather")["metadata"]["namespace"] = "quartet"
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quartet"}})
        problems = checks.expectations(TARGETS["service:weather"], docs)
        self.assertTrue(any("Service/weather is bound to namespace quartet" in p for p in problems), problems)
        self.assertTrue(any("creates Namespace/quartet" in p for p in problems), problems)

    def test_service_reading_a_shared_config_map_is_caught(self) -> None:
        docs = rendered("service:chat")
        config_map(docs, "chat-runtime")["metadata"]["name"] = "quartet-runtime"
        container(docs, "chat")["envFrom"][0]["configMapRef"]["name"] = "quartet-runtime"
        problems = checks.expectations(TARGETS["service:chat"], docs)
        self.assertTrue(any("own chat-runtime ConfigMap" in p for p in problems), problems)

    def test_production_without_connection_age_is_caught(self) -> None:
        docs = rendered("service+production:transform")
        del config_map(docs, "transform-runtime")["data"]["QUARTET_MAX_CONNECTION_AGE"]
        problems = checks.expectations(TARGETS["service+production:transform"], docs)
        self.assertTrue(any("QUARTET_MAX_CONNECTION_AGE" in p for p in problems), problems)

    def test_misspelled_field_fails_schema_validation(self) -> None:
        docs = rendered("dev")
        probe = container(docs, "transform").pop("readinessProbe")
        container(docs, "transform")["readinesProbe"] = probe
        problems = checks.schema_violations([workload(docs, "transform")], checks.DEFAULT_K8S_VERSIONS[:1])
        self.assertTrue(any("readinesProbe" in p for p in problems), problems)

    def test_dev_with_postgres_breaks_the_dev_contract(self) -> None:
        docs = rendered("dev")
        container(docs, "database")["env"].append({"name": "QUARTET_DATABASE_URL", "value": "postgres://db/q"})
        self.assertTrue(any("embedded backends" in p for p in checks.overlay_expectations("dev", docs)))

    def test_production_chat_on_one_replica_breaks_the_production_contract(self) -> None:
        docs = rendered("production")
        checks.find(docs, "HorizontalPodAutoscaler", "chat")["spec"]["minReplicas"] = 1
        self.assertTrue(any("Deployment/chat" in p for p in checks.overlay_expectations("production", docs)))


class CheckovScansWhatWeRender(unittest.TestCase):
    """The independent scanner runs over our renders and sees what it should."""

    def setUp(self) -> None:
        self.command = checks.checkov_command()
        if self.command is None:
            if os.environ.get("CI") == "true":
                raise AssertionError("no checkov under CI (pip install -r deploy/tests/requirements.txt)")
            raise unittest.SkipTest("no checkov here (set CHECKOV)")

    def test_a_privileged_container_and_a_tag_only_image_fail_the_scan(self) -> None:
        docs = rendered("production")
        container(docs, "weather")["securityContext"]["privileged"] = True
        container(docs, "chat")["image"] = "ghcr.io/quartet-rs/quartet-chat:0.1.0"
        target = checks.Target("overlay production", "overlay", checks.OVERLAYS / "production")
        scans, error = checks.run_checkov(self.command, {target: docs})
        self.assertIsNone(error)
        failed = scans[checks.scan_file_name(target)].failed
        self.assertTrue(any(f.startswith("CKV_K8S_16 ") and "weather" in f for f in failed), failed)
        self.assertTrue(any(f.startswith("CKV_K8S_43 ") and "chat" in f for f in failed), failed)
        self.assertEqual(scans["Dockerfile"].failed, [])


COMPOSE: dict = {}


def compose_config() -> dict:
    """A fresh copy of compose.yaml as Compose normalizes it; skipped without a
    Compose binary, except under CI=true where that is a failure."""
    if not COMPOSE:
        command = checks.compose_command()
        if command is None:
            if os.environ.get("CI") == "true":
                raise AssertionError("no Docker Compose v2 under CI (set DOCKER_COMPOSE)")
            raise unittest.SkipTest("no Docker Compose v2 here (set DOCKER_COMPOSE)")
        COMPOSE.update(checks.render_compose(command))
    return copy.deepcopy(COMPOSE)


class ComposeChecks(unittest.TestCase):
    def test_compose_file_passes(self) -> None:
        self.assertEqual(checks.compose_violations(compose_config()), [])

    def test_writable_container_is_caught(self) -> None:
        config = compose_config()
        config["services"]["weather"]["read_only"] = False
        self.assertIn("compose: weather: root filesystem is writable (read_only)", checks.compose_violations(config))

    def test_root_user_is_caught(self) -> None:
        config = compose_config()
        del config["services"]["chat"]["user"]
        self.assertTrue(any("chat: user" in p for p in checks.compose_violations(config)))

    def test_short_stop_grace_is_caught(self) -> None:
        config = compose_config()
        config["services"]["transform"]["stop_grace_period"] = "5s"
        self.assertTrue(any("transform: stop_grace_period 5s" in p for p in checks.compose_violations(config)))

    def test_embedded_database_is_caught(self) -> None:
        config = compose_config()
        del config["services"]["database"]["environment"]["QUARTET_DATABASE_URL"]
        self.assertIn("compose: database does not use the postgres service", checks.compose_violations(config))

    def test_missing_udp_port_is_caught(self) -> None:
        config = compose_config()
        ports = config["services"]["gateway"]["ports"]
        config["services"]["gateway"]["ports"] = [p for p in ports if p["protocol"] != "udp"]
        self.assertTrue(any("gateway publishes" in p for p in checks.compose_violations(config)))


class Durations(unittest.TestCase):
    def test_humantime_durations_read_as_the_servers_read_them(self) -> None:
        self.assertEqual(checks.seconds("5s"), 5)
        self.assertEqual(checks.seconds("1m 30s"), 90)
        self.assertEqual(checks.seconds("250ms"), 0.25)
        with self.assertRaises(ValueError):
            checks.seconds("five")


if __name__ == "__main__":
    unittest.main()
