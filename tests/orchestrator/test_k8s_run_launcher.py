"""Each run in its own pod: the K8sRunLauncher that the production instance configures, launching a real
run against a stand-in Kubernetes API server (HTTP, the batch/v1 Jobs endpoint). The Job it posts is what
the cluster would get: the image, the service account bound to the IAM role, the settings from the
secret, resource requests and a non-root security context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cms_dagster import settings as settings_mod
from cms_dagster.infra import dagster_instance

HERE = Path(__file__).resolve().parent
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cms:1.4.2"


class _KubeApi(BaseHTTPRequestHandler):
    posted: list[tuple[str, dict]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _KubeApi.posted.append((self.path, body))
        body.setdefault("metadata", {})["uid"] = "0f0f"
        out = json.dumps(body).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self) -> None:  # noqa: N802
        out = b'{"kind": "Status", "code": 404}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[Path]:
    _KubeApi.posted = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KubeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "eks",
        "clusters": [{"name": "eks", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "cms", "user": {"token": "test-token"}}],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "cms"}}],
    }))
    yield kubeconfig
    server.shutdown()


@pytest.mark.slow
def test_a_launched_run_becomes_a_job_whose_pod_the_cluster_can_run(tmp_path: Path, kube_api: Path) -> None:
    o = settings_mod.load_orchestrator({
        "CMS_DAGSTER_RUN_LAUNCHER": "k8s",
        "CMS_K8S_NAMESPACE": "cms-prod",
        "CMS_K8S_IMAGE": IMAGE,
        "CMS_K8S_KUBECONFIG": str(kube_api),
    })
    cfg = dagster_instance.instance_config(o)
    # launch at once instead of queueing, so the launcher is the only thing under test here
    cfg["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    cfg.pop("concurrency")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "DAGSTER_HOME": str(home), "DO_NOT_TRACK": "1", "PYTHONPATH": str(HERE.parents[1])}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-f", str(HERE / "location.py"), "-j", "collection"],
        env=env, cwd=HERE.parents[1], capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    jobs = [(p, b) for p, b in _KubeApi.posted if p.endswith("/jobs")]
    assert len(jobs) == 1, (_KubeApi.posted, out.stdout[-2000:], out.stderr[-2000:])
    path, job = jobs[0]
    assert path == "/apis/batch/v1/namespaces/cms-prod/jobs"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert pod["serviceAccountName"] == "cms-dagster"
    assert {"secretRef": {"name": "cms-settings"}} in container["envFrom"]
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "2Gi"}
    assert container["securityContext"]["runAsNonRoot"] is True
    # the run pod reaches the instance (PostgreSQL) through the instance config map and password secret
    env_names = {e["name"] for e in container.get("env", [])}
    assert "DAGSTER_PG_PASSWORD" in env_names
    assert job["metadata"]["labels"]["dagster/job"] == "collection"
    assert "execute_run" in " ".join(container["args"])
