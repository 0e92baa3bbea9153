"""deploy/k8s renders, validates offline, and runs what `make run` and the compose file run.

Each overlay is rendered with ``kubectl kustomize`` (Debian's kubectl, installed when missing),
its core objects are validated with kubernetes-validate against a pinned Kubernetes version,
and its ScaledObject against KEDA's CRD schema (vendored in deploy/k8s/crd).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import redis
import yaml
from rq import Queue
from rq.registry import StartedJobRegistry

from scripts.run import (
    API_COMMAND,
    REDIS_ARGS,
    REDIS_MAXMEMORY,
    WEBHOOK_WORKER_COMMAND,
    WORKER_COMMAND,
)
from service.config import from_env as api_config
from store.config import WebhookConfig
from store.queue import DELIVERY_TIMEOUT_MARGIN_SECONDS, QUEUE_NAME
from tests.support.deploy import (
    ROOT,
    compose_seconds,
    dockerfile_arg,
    instructions,
    read_compose,
    read_dockerfile,
)

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod", "sentinel")
SINGLE_REDIS = ("dev", "prod")  # the overlays that run deploy/k8s/redis
KUBERNETES_VERSION = "1.34.0"  # the cluster version the manifests are validated against
KEDA_CRD = K8S / "crd" / "keda.sh_scaledobjects.yaml"
# Variables the manifests set that the service does not read, and who does.
READ_BY_OTHERS = {"OPENBLAS_NUM_THREADS": "NumPy's OpenBLAS", "OMP_NUM_THREADS": "OpenMP"}
READINESS_GRACE_SECONDS = 30  # README: Deploying
COMMANDS = {
    "backprop-api": API_COMMAND,
    "backprop-worker": WORKER_COMMAND,
    "backprop-webhook-worker": WEBHOOK_WORKER_COMMAND,
}

pytestmark = pytest.mark.process  # runs kubectl (and may install it): not in make test-fast


def ensure_kubectl() -> str:
    """kubectl's path; Debian's package (kubernetes-client) is installed when it is missing."""
    found = shutil.which("kubectl")
    if found:
        return found
    apt = shutil.which("apt-get")
    assert apt, "kubectl is missing and there is no apt-get to install it"
    install = [apt, "install", "-y", "--no-install-recommends", "kubernetes-client"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run([apt, "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("kubectl")
    assert found, "kubernetes-client installed no kubectl"
    return found


def kustomize(directory: Path) -> list[dict]:
    """The objects ``kubectl kustomize`` renders from ``directory``."""
    done = subprocess.run(
        [ensure_kubectl(), "kustomize", str(directory)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def the(objects: list[dict], kind: str, name: str | None = None) -> dict:
    """The one object of ``kind`` (named ``name``, ignoring a generator's hash suffix)."""
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (name is None or re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", o["metadata"]["name"]))
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def config(objects: list[dict], name: str = "backprop-config") -> dict[str, str]:
    return the(objects, "ConfigMap", name)["data"]


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(objects: list[dict], deployment: dict) -> dict[str, str]:
    """The environment the container gets: its ConfigMaps, then its own ``env`` values."""
    env = {}
    for source in container(deployment).get("envFrom", []):
        if "configMapRef" in source:
            env.update(config(objects, source["configMapRef"]["name"]))
    for var in container(deployment).get("env", []):
        env[var["name"]] = var.get("value")
    return env


def deployments(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def triggers(objects: list[dict]) -> dict[str, dict]:
    """The ScaledObject's triggers by name."""
    return {t["name"]: t for t in the(objects, "ScaledObject")["spec"]["triggers"]}


def quantity(value: str) -> float:
    """A Kubernetes memory quantity (``512Mi``, ``5Gi``) in bytes."""
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", str(value)).groups()
    return int(number) * 1024 ** {None: 0, "Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4}[unit]


def redis_bytes(value: str) -> float:
    """A redis.conf memory size (``256mb``, ``4gb``; k/m/g are 1000s, kb/mb/gb 1024s)."""
    number, unit = re.fullmatch(r"(\d+)([kmg]b?)?", value.lower()).groups()
    if not unit:
        return int(number)
    return int(number) * (1024 if unit.endswith("b") else 1000) ** ("kmg".index(unit[0]) + 1)


def source_reads(name: str) -> bool:
    """Whether the service's code reads the environment variable ``name``."""
    for package in ("service", "workers", "store", "scripts", "backprop"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(rf"[\"']{name}[\"']", path.read_text()):
                return True
    return False


# -- rendering and validation ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_the_whole_service(rendered, overlay):
    objects = rendered[overlay]
    assert set(deployments(objects)) == set(COMMANDS)
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"):
        the(objects, kind, "backprop-api")
    the(objects, "ScaledObject", "backprop-worker")
    the(objects, "PodDisruptionBudget", "backprop-worker")
    assert the(objects, "NetworkPolicy")
    namespace = the(objects, "Namespace")["metadata"]["name"]
    assert all(
        o["metadata"].get("namespace") == namespace for o in objects if o["kind"] != "Namespace"
    )
    assert (overlay in SINGLE_REDIS) == any(o["kind"] == "StatefulSet" for o in objects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_validate_against_the_pinned_kubernetes(rendered, overlay):
    core = [o for o in rendered[overlay] if o["apiVersion"] != "keda.sh/v1alpha1"]
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_refuses_a_misspelt_field(rendered):
    api = deployments(rendered["prod"])["backprop-api"]
    broken = {**api, "spec": {**api["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def scaled_object_schema() -> dict:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scaled_object_validates_against_kedas_crd(rendered, overlay, scaled_object_schema):
    scaled = the(rendered[overlay], "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    jsonschema.validate(scaled, scaled_object_schema)


def test_kedas_schema_refuses_a_scaled_object_without_triggers(rendered, scaled_object_schema):
    scaled = the(rendered["prod"], "ScaledObject")
    spec = {k: v for k, v in scaled["spec"].items() if k != "triggers"}
    with pytest.raises(jsonschema.ValidationError, match="triggers"):
        jsonschema.validate({**scaled, "spec": spec}, scaled_object_schema)


# -- the same processes as make run, the image and the compose file ---------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_run_the_commands_make_run_runs_from_one_image(rendered, overlay):
    found = deployments(rendered[overlay])
    for name, command in COMMANDS.items():
        assert container(found[name])["command"] == list(command), name
    assert len({container(d)["image"] for d in found.values()}) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_are_those_of_the_image_and_compose(rendered, overlay):
    objects = rendered[overlay]
    api = deployments(objects)["backprop-api"]
    env = env_of(objects, api)
    (port,) = container(api)["ports"]
    compose_port = int(read_compose()["services"]["api"]["ports"][0].rsplit(":", 1)[1])
    exposed = [int(p) for p in instructions(read_dockerfile(), "EXPOSE")]
    assert port["containerPort"] == int(env["PORT"]) == compose_port == exposed[-1]
    assert env["BIND_HOST"] == "0.0.0.0"  # listens beyond the pod; needs the keys below
    readiness = container(api)["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": port["name"]}
    # /readyz fails on every pod while Redis is away: a restart or a failover shorter than
    # this keeps them in the Service, answering 503 with Retry-After.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] >= READINESS_GRACE_SECONDS
    assert container(api)["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    service = the(objects, "Service", "backprop-api")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_serve_metrics_as_in_compose(rendered, overlay):
    compose = read_compose()["services"]
    for name, service in (
        ("backprop-worker", "worker"),
        ("backprop-webhook-worker", "webhook-worker"),
    ):
        deployment = deployments(rendered[overlay])[name]
        env = env_of(rendered[overlay], deployment)
        expected = compose[service]["environment"]
        for var in ("WORKER_METRICS_PORT", "WORKER_METRICS_HOST", "LOG_FORMAT"):
            assert env[var] == expected[var], (name, var)
        (port,) = container(deployment)["ports"]
        assert port["containerPort"] == int(env["WORKER_METRICS_PORT"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_set_is_read_by_the_service_or_named_reader(rendered, overlay):
    objects = rendered[overlay]
    keda_reads = {
        value
        for trigger in triggers(objects).values()
        for key, value in trigger["metadata"].items()
        if key.endswith("FromEnv")
    }
    for name, deployment in deployments(objects).items():
        for var in env_of(objects, deployment):
            assert source_reads(var) or var in keda_reads or var in READ_BY_OTHERS, (name, var)


def test_the_compose_variables_are_set_in_the_manifests_too(rendered):
    env = env_of(rendered["prod"], deployments(rendered["prod"])["backprop-api"])
    for var in read_compose()["services"]["api"]["environment"]:
        # The compose file gives demo keys inline; the manifests a file from a Secret.
        assert var in env or (var == "API_KEYS" and "API_KEYS_FILE" in env), var


# -- KEDA on rq's queue ------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_counts_the_jobs_rq_has_waiting_and_started(rendered, overlay):
    objects = rendered[overlay]
    scaled = the(objects, "ScaledObject")
    found = triggers(objects)
    rq_keys = {
        "queued": Queue(QUEUE_NAME, connection=redis.Redis()).key,  # rq:queue:<name>, a list
        "started": StartedJobRegistry(QUEUE_NAME, connection=redis.Redis()).key,  # a zset
    }
    assert {name: t["metadata"]["listName"] for name, t in found.items()} == rq_keys
    for trigger in found.values():
        assert int(trigger["metadata"]["listLength"]) >= 1
        assert int(trigger["metadata"]["activationListLength"]) >= 0
    # A worker per job in flight: waiting jobs alone would stop busy workers (KEDA #3674).
    modifiers = scaled["spec"]["advanced"]["scalingModifiers"]
    assert modifiers["formula"] == " + ".join(rq_keys) and modifiers["target"] == "1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "backprop-worker"
    # /readyz needs a live training worker: with none, no API pod would be ready to take the
    # job that would make KEDA start one.
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


@pytest.mark.parametrize("overlay", SINGLE_REDIS)
def test_keda_reads_the_redis_the_service_uses(rendered, overlay):
    objects = rendered[overlay]
    worker = deployments(objects)["backprop-worker"]
    env = env_of(objects, worker)
    url = urlsplit(env["REDIS_URL"])
    namespace = worker["metadata"]["namespace"]
    for trigger in triggers(objects).values():
        assert trigger["type"] == "redis"
        host, _, port = env[trigger["metadata"]["addressFromEnv"]].partition(":")
        assert host == f"{url.hostname}.{namespace}.svc.cluster.local"
        assert int(port) == url.port
        assert int(trigger["metadata"]["databaseIndex"]) == int(url.path.strip("/") or 0)
    redis_service = the(objects, "Service", url.hostname)
    assert redis_service["spec"]["ports"][0]["port"] == url.port


def test_keda_asks_the_sentinels_the_service_asks(rendered):
    objects = rendered["sentinel"]
    env = env_of(objects, deployments(objects)["backprop-worker"])
    for trigger in triggers(objects).values():
        assert trigger["type"] == "redis-sentinel"
        assert trigger["metadata"]["addressesFromEnv"] == "REDIS_SENTINELS"
        assert trigger["metadata"]["sentinelMasterFromEnv"] == "REDIS_MASTER_NAME"
    for address in env["REDIS_SENTINELS"].split(","):
        assert re.fullmatch(r"[a-z0-9.-]+\.svc\.cluster\.local:\d+", address), address
    assert env["REDIS_MASTER_NAME"]


# -- shutdown, sizes, security -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_periods_cover_a_warm_shutdown(rendered, overlay):
    found = deployments(rendered[overlay])
    worker = found["backprop-worker"]["spec"]["template"]["spec"]
    # The same measured figure as the compose file's (deploy/k8s/README.md: how it was taken).
    compose_grace = compose_seconds(read_compose()["services"]["worker"]["stop_grace_period"])
    assert worker["terminationGracePeriodSeconds"] == compose_grace
    # rq lets a delivery under way finish: its limit is set in store/queue.py.
    webhook = found["backprop-webhook-worker"]["spec"]["template"]["spec"]
    attempt = 3 * WebhookConfig.from_env({}).timeout_seconds + DELIVERY_TIMEOUT_MARGIN_SECONDS
    assert webhook["terminationGracePeriodSeconds"] >= attempt


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_worker_has_the_memory_a_job_may_take(rendered, overlay):
    objects = rendered[overlay]
    worker = deployments(objects)["backprop-worker"]
    budget = api_config(env_of(objects, worker))["MAX_TRAINING_MEMORY_BYTES"]
    assert quantity(container(worker)["resources"]["limits"]["memory"]) > budget


@pytest.mark.parametrize("overlay", SINGLE_REDIS)
def test_redis_is_durable_capped_and_never_evicts(rendered, overlay):
    objects = rendered[overlay]
    redis = the(objects, "StatefulSet", "redis")
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    args = server["args"]
    assert " ".join(REDIS_ARGS) in " ".join(args)  # as make run and the compose file
    assert server["image"] == read_compose()["services"]["redis"]["image"]
    (maxmemory_env,) = server["env"]
    assert args[args.index("--maxmemory") + 1] == f"$({maxmemory_env['name']})"
    ref = maxmemory_env["valueFrom"]["configMapKeyRef"]
    maxmemory = redis_bytes(the(objects, "ConfigMap", "redis-config")["data"][ref["key"]])
    # Rewriting the AOF forks: room for the child's copied pages.
    assert quantity(server["resources"]["limits"]["memory"]) >= 2 * maxmemory
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    (mount,) = server["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert args[args.index("--dir") + 1] == mount["mountPath"]


def test_the_base_redis_cap_is_make_runs():
    (base,) = yaml.safe_load((K8S / "redis" / "kustomization.yaml").read_text())[
        "configMapGenerator"
    ]
    assert f"REDIS_MAXMEMORY={REDIS_MAXMEMORY}" in base["literals"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_the_images_user_on_a_read_only_root(rendered, overlay):
    uid = int(dockerfile_arg(read_dockerfile(), "UID"))
    for obj in rendered[overlay]:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        if obj["kind"] == "Deployment":
            assert pod["securityContext"]["runAsUser"] == uid
        for box in pod["containers"]:
            assert box["securityContext"]["readOnlyRootFilesystem"] is True
            assert box["securityContext"]["allowPrivilegeEscalation"] is False
            assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "memory" in box["resources"]["limits"] and box["resources"]["requests"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keys_come_from_a_secret_and_config_from_a_configmap(rendered, overlay):
    objects = rendered[overlay]
    api = deployments(objects)["backprop-api"]
    keys_file = Path(env_of(objects, api)["API_KEYS_FILE"])
    (mount,) = [
        m for m in container(api)["volumeMounts"] if m["mountPath"] == str(keys_file.parent)
    ]
    (volume,) = [
        v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    secrets = [o for o in objects if o["kind"] == "Secret"]
    if overlay == "dev":  # demo keys, generated
        (secret,) = secrets
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
        assert keys_file.name in secret["data"]
    else:  # created by the operator; no key is in the repository
        assert volume["secret"]["secretName"] == "backprop-api-keys" and not secrets
    for deployment in deployments(objects).values():
        refs = [
            s["configMapRef"]["name"]
            for s in container(deployment)["envFrom"]
            if "configMapRef" in s
        ]
        assert refs == [the(objects, "ConfigMap", "backprop-config")["metadata"]["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_service_and_keda_reach_redis(rendered, overlay):
    objects = rendered[overlay]
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    peers = rule["from"]
    pods = [p for p in peers if "namespaceSelector" not in p]
    others = [p for p in peers if "namespaceSelector" in p]
    # The service's three Deployments, and nothing else of this namespace but Redis's own pods.
    service_peer = [p for p in pods if "matchExpressions" in p["podSelector"]]
    (expression,) = service_peer[0]["podSelector"]["matchExpressions"]
    for deployment in deployments(objects).values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels[expression["key"]] in expression["values"]
    assert len(expression["values"]) == len(deployments(objects))
    (keda,) = others
    assert keda["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    redis_ports = {p["port"] for p in rule["ports"]}
    assert 6379 in redis_ports
    if overlay in SINGLE_REDIS:
        assert len(pods) == 1
        redis = the(objects, "StatefulSet", "redis")
        selected = policy["spec"]["podSelector"]["matchLabels"]
        assert selected.items() <= redis["spec"]["template"]["metadata"]["labels"].items()
        assert redis_ports == {
            redis["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_scales_on_cpu_and_keeps_pods_through_a_drain(rendered, overlay):
    objects = rendered[overlay]
    api = deployments(objects)["backprop-api"]
    hpa = the(objects, "HorizontalPodAutoscaler", "backprop-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "backprop-api"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container(api)["resources"]["requests"]  # utilisation is of the request
    pdb = the(objects, "PodDisruptionBudget", "backprop-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # One pod at a time: a drain goes on, and with two or more replicas the API stays up.
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_drain_stops_one_worker_at_a_time(rendered, overlay):
    objects = rendered[overlay]
    worker = deployments(objects)["backprop-worker"]
    pdb = the(objects, "PodDisruptionBudget", "backprop-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    (spread,) = worker["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
