"""A real Kubernetes control plane for the tests in this directory.

``control_plane`` (session scope) builds or finds etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kwok and kubectl with ``hack/build-k8s-tools.sh`` and starts them on random loopback ports, the way
``hack/tools/smoke-control-plane.sh`` does: RBAC on, certificates from openssl, static bearer tokens, a fake kwok
node. The only reason to skip is a machine without Go and without built binaries; anything else that goes wrong
fails with the components' logs.

Environment:
  RIPPLE_K8S_BIN   a bin dir holding the binaries (skips the build script)
  KUBECONFIG_E2E   a kubeconfig of an existing cluster to use instead (kubectl from PATH)
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
BUILD_SCRIPT = REPO / "hack" / "build-k8s-tools.sh"
POD_CIDR = "127.10.0.0/16"
SERVICE_CIDR = "127.20.0.0/16"
FAKE_NODE = "kwok-node-0"
BUILD_TIMEOUT = 30 * 60  # a cold build of kube-apiserver & co. takes ~8 minutes
START_TIMEOUT = 60.0
LOG_TAIL_LINES = 40


class ControlPlaneError(RuntimeError):
    """Starting or talking to the control plane failed (the message carries the logs)."""


@dataclass
class ControlPlane:
    kubeconfig: Path
    bin_dir: Path
    server: str
    token: str
    ca_file: Path
    work_dir: Path
    external: bool = False
    """True when running against the cluster of ``KUBECONFIG_E2E``."""
    kubectl_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.kubectl_path = self.bin_dir / "kubectl"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl with the admin kubeconfig; with ``check`` a non-zero exit raises with its output."""
        command = [
            str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.work_dir / 'kube-cache'}",
            *args,
        ]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


# --- finding the binaries ---------------------------------------------------------------------------------------

REQUIRED_TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")


def _find_bin_dir() -> Path:
    explicit = os.environ.get("RIPPLE_K8S_BIN")
    if explicit:
        bin_dir = Path(explicit).expanduser()
        missing = [t for t in REQUIRED_TOOLS if not os.access(bin_dir / t, os.X_OK)]
        if missing:
            raise ControlPlaneError(f"RIPPLE_K8S_BIN={explicit} lacks executables: {', '.join(missing)}")
        return bin_dir
    have_go = shutil.which("go") is not None
    try:
        # Idempotent and instant once built; a cold build compiles kube-apiserver & co. (minutes).
        result = subprocess.run(
            [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, cwd=REPO, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"{BUILD_SCRIPT} did not finish in {BUILD_TIMEOUT}s:\n{exc.stderr}") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode == 0 and lines and Path(lines[-1]).is_dir():
        return Path(lines[-1])
    if not have_go:
        pytest.skip(
            "Go toolchain absent (no `go` on PATH) and no built binaries: cannot build kube-apiserver/etcd/kwok "
            "for the Kubernetes tests (install Go, set RIPPLE_K8S_BIN to a bin dir, or KUBECONFIG_E2E to a cluster)"
        )
    raise ControlPlaneError(
        f"{BUILD_SCRIPT} failed (exit {result.returncode})\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


# --- processes --------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when pytest dies, so no component outlives a killed test run."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Processes:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *command: str | Path) -> subprocess.Popen[bytes]:
        log = (self.work_dir / f"{name}.log").open("wb")
        try:
            process = subprocess.Popen(
                [str(c) for c in command], cwd=self.work_dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            log.close()
        self.started.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {process.returncode}\n{self.logs()}")

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll ``ready`` until it holds; fail early when a started process died."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if ready():
                    return
            self.check_alive()
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        parts = []
        for name, _ in self.started:
            lines = (self.work_dir / f"{name}.log").read_text(errors="replace").splitlines()
            parts.append(f"=== {name}.log (last {LOG_TAIL_LINES} lines)\n" + "\n".join(lines[-LOG_TAIL_LINES:]))
        return "\n".join(parts)

    def stop_all(self) -> None:
        """Newest first, each gone before the next: the apiserver must still reach etcd to stop quickly."""
        while self.started:
            _, process = self.started.pop()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _make_certs(work: Path) -> None:
    """A CA, the apiserver's serving certificate, and the service-account token signing key pair."""
    if shutil.which("openssl") is None:
        raise ControlPlaneError("the Kubernetes tests need openssl (apt-get install openssl)")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ripple-test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=work)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
             "-keyout", "apiserver.key", "-out", "apiserver.csr", cwd=work)
    (work / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:127.20.0.1,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "apiserver.crt", cwd=work)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=work)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=work)


def _write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }, indent=2))
    path.chmod(0o600)


FAKE_NODE_MANIFEST = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": FAKE_NODE,
        "annotations": {"kwok.x-k8s.io/node": "fake"},
        "labels": {
            "kubernetes.io/hostname": FAKE_NODE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "type": "kwok",
        },
    },
    "status": {
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
    },
}


def _start_control_plane(bin_dir: Path, work: Path, processes: Processes) -> ControlPlane:
    _make_certs(work)
    ca_file = work / "ca.crt"
    users = {  # name -> (token, groups); RBAC decides what each may do
        "admin": (secrets.token_hex(16), "system:masters"),
        "system:kube-controller-manager": (secrets.token_hex(16), ""),
        "system:kube-scheduler": (secrets.token_hex(16), ""),
        "kwok": (secrets.token_hex(16), "system:masters"),
    }
    (work / "tokens.csv").write_text("".join(
        f'{token},{name},uid-{name.rsplit(":", 1)[-1]}' + (f',"{groups}"' if groups else "") + "\n"
        for name, (token, groups) in users.items()
    ))
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfigs = {}
    for short, name in (("admin", "admin"), ("kcm", "system:kube-controller-manager"),
                        ("scheduler", "system:kube-scheduler"), ("kwok", "kwok")):
        kubeconfigs[short] = work / f"{short}.kubeconfig"
        _write_kubeconfig(kubeconfigs[short], server, ca_file, short, users[name][0])
    admin_token = users["admin"][0]
    plane = ControlPlane(kubeconfigs["admin"], bin_dir, server, admin_token, ca_file, work)
    tls = ssl.create_default_context(cafile=str(ca_file))

    def get(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> bytes:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.read()

    etcd_url = f"http://127.0.0.1:{etcd_port}"
    processes.start(
        "etcd", bin_dir / "etcd", "--name=test", f"--data-dir={work / 'etcd-data'}", "--log-level=warn",
        "--unsafe-no-fsync", f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
    )
    processes.wait_for("etcd", lambda: json.loads(get(f"{etcd_url}/health"))["health"] == "true")

    processes.start(
        "kube-apiserver", bin_dir / "kube-apiserver",
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
        "--endpoint-reconciler-type=none",
        f"--cert-dir={work}", "--tls-cert-file=apiserver.crt", "--tls-private-key-file=apiserver.key",
        "--client-ca-file=ca.crt", "--token-auth-file=tokens.csv",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=sa.pub", "--service-account-signing-key-file=sa.key",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true", "--profiling=false",
    )
    processes.wait_for("kube-apiserver /readyz", lambda: get(f"{server}/readyz", admin_token, tls) == b"ok")

    processes.start(
        "kube-controller-manager", bin_dir / "kube-controller-manager",
        f"--kubeconfig={kubeconfigs['kcm']}", "--leader-elect=false", "--secure-port=0",
        "--use-service-account-credentials=true", "--service-account-private-key-file=sa.key",
        "--root-ca-file=ca.crt", "--cluster-signing-cert-file=ca.crt", "--cluster-signing-key-file=ca.key",
    )
    processes.start(
        "kube-scheduler", bin_dir / "kube-scheduler",
        f"--kubeconfig={kubeconfigs['scheduler']}", "--leader-elect=false", "--secure-port=0",
    )
    processes.start(
        "kwok", bin_dir / "kwok",
        f"--kubeconfig={kubeconfigs['kwok']}", f"--config={bin_dir.parent / 'etc' / 'kwok-stages.yaml'}",
        "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-lease-duration-seconds=40", f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1",
    )
    plane.kubectl("apply", "-f", "-", input=json.dumps(FAKE_NODE_MANIFEST))

    def node_ready() -> bool:
        node = json.loads(get(f"{server}/api/v1/nodes/{FAKE_NODE}", admin_token, tls))
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    # The namespace's default ServiceAccount comes from kube-controller-manager; pods need it.
    processes.wait_for("the default ServiceAccount",
                       lambda: bool(get(f"{server}/api/v1/namespaces/default/serviceaccounts/default", admin_token,
                                        tls)))
    processes.wait_for(f"node {FAKE_NODE} Ready (kwok)", node_ready)
    return plane


def _external_control_plane(kubeconfig: Path, work: Path) -> ControlPlane:
    """The cluster of ``KUBECONFIG_E2E``, reached with the kubectl on PATH."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ControlPlaneError("KUBECONFIG_E2E is set but there is no kubectl on PATH")
    result = subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "config", "view", "--minify", "--raw", "-o", "json"],
        capture_output=True, text=True, check=False, timeout=30,
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"cannot read KUBECONFIG_E2E={kubeconfig}:\n{result.stderr}")
    config = json.loads(result.stdout)
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0].get("user", {}) if config.get("users") else {}
    ca_file = work / "ca.crt"
    if "certificate-authority-data" in cluster:
        ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    elif "certificate-authority" in cluster:
        ca_file = Path(cluster["certificate-authority"])
    plane = ControlPlane(kubeconfig, Path(kubectl).parent, cluster["server"], user.get("token", ""), ca_file, work,
                         external=True)
    plane.kubectl("get", "--raw=/readyz")
    return plane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running Kubernetes API server with controllers, a scheduler and a fake kwok node; logs in work_dir."""
    external = os.environ.get("KUBECONFIG_E2E")
    if external:
        yield _external_control_plane(Path(external).expanduser(), tmp_path_factory.mktemp("k8s-external"))
        return
    bin_dir = _find_bin_dir()
    # Short and outside pytest's deep tmp tree: some components put unix sockets in their working directory.
    work = Path(tempfile.mkdtemp(prefix="ripple-k8s-"))
    processes = Processes(work)
    ok = False
    try:
        plane = _start_control_plane(bin_dir, work, processes)
        yield plane
        ok = True
    finally:
        processes.stop_all()
        if ok and not os.environ.get("RIPPLE_K8S_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"\nk8s control plane logs kept in {work}", file=sys.stderr)


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> ControlPlane:
    """Ripple's CRDs (crds/*.yaml) applied and Established."""
    control_plane.kubectl("apply", "-f", str(CRDS))
    control_plane.kubectl("wait", "--for=condition=Established", "-f", str(CRDS), "--timeout=60s")
    return control_plane


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting for finalization) after the test."""
    name = f"t-{secrets.token_hex(3)[:5]}"
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
