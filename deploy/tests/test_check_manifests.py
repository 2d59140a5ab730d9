"""The manifest checks must catch what they claim to: each test renders the real
overlays, breaks one thing the way a careless edit would, and expects the rule to
name it. A rule that passes broken manifests is worse than none.

Run: python3 -m unittest discover -s deploy/tests   (needs kubectl, PyYAML,
kubernetes-validate; see deploy/tests/requirements.txt)
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


def rendered(overlay: str) -> list[dict]:
    """A fresh copy of an overlay's rendering (rendered once per run)."""
    if overlay not in RENDERED:
        RENDERED[overlay] = checks.render(checks.OVERLAYS / overlay)
    return copy.deepcopy(RENDERED[overlay])


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


class RenderedOverlaysPass(unittest.TestCase):
    def test_every_overlay_passes_every_rule(self) -> None:
        for overlay in ("dev", "production"):
            with self.subTest(overlay=overlay):
                docs = rendered(overlay)
                self.assertEqual(checks.rule_violations(docs), [])
                self.assertEqual(checks.overlay_expectations(overlay, docs), [])


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
        config_map(docs, "quartet-runtime")["data"]["QUARTET_DRAIN_TIMEOUT"] = "1m"
        self.assertCaught(checks.rule_graceful_shutdown, docs, "drain 60s")

    def test_zero_shutdown_delay_is_caught(self) -> None:
        docs = rendered("dev")
        config_map(docs, "quartet-runtime")["data"]["QUARTET_SHUTDOWN_DELAY"] = "0s"
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

    def test_missing_default_deny_is_caught(self) -> None:
        docs = [d for d in rendered("production") if d["metadata"]["name"] != "default-deny-ingress"]
        self.assertCaught(checks.rule_network_policies, docs, "no default-deny")

    def test_grpc_open_to_everyone_is_caught(self) -> None:
        docs = rendered("production")
        policy = checks.find(docs, "NetworkPolicy", "grpc-from-namespace")
        del policy["spec"]["ingress"][0]["from"]
        self.assertCaught(checks.rule_network_policies, docs, "StatefulSet/database", "50052", "anywhere")

    def test_metrics_from_any_namespace_is_caught(self) -> None:
        docs = rendered("dev")
        policy = checks.find(docs, "NetworkPolicy", "metrics-from-monitoring")
        policy["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
        self.assertCaught(checks.rule_network_policies, docs, "gateway", "9090", "namespaces:")

    def test_closed_gateway_text_port_is_caught(self) -> None:
        docs = rendered("production")
        policy = checks.find(docs, "NetworkPolicy", "gateway-text-from-anywhere")
        policy["spec"]["ingress"][0]["ports"] = [p for p in policy["spec"]["ingress"][0]["ports"] if p["protocol"] == "TCP"]
        self.assertCaught(checks.rule_network_policies, docs, "gateway", "UDP 7004", "nobody")

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
        env = container(docs, "chat")["env"]
        container(docs, "chat")["env"] = [v for v in env if v["name"] != "QUARTET_NATS_URL"]
        self.assertCaught(checks.rule_backends_fit_replicas, docs, "Deployment/chat", "split the rooms")

    def test_database_password_in_manifest_is_caught(self) -> None:
        docs = rendered("production")
        for variable in container(docs, "database")["env"]:
            if variable["name"] == "QUARTET_DATABASE_URL":
                variable.pop("valueFrom")
                variable["value"] = "postgres://quartet:hunter2@db/quartet"
        self.assertCaught(checks.rule_backends_fit_replicas, docs, "database", "from a Secret")

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
