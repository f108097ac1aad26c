"""End to end on a real cluster where the chart is installed (``hack/e2e-kind.sh``): the release's own operator,
ingress and dispatcher move an event from the ingress to a Function pod and a reply on to a second one.

Runs only with ``KUBECONFIG_E2E`` and ``RIPPLE_E2E_RELEASE`` (``namespace/release``); the built-in control plane
has no kubelet to run pods, so there the same flow is covered by ``test_operator.py`` with a kubelet stand-in.
"""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.k8s
RELEASE = os.environ.get("RIPPLE_E2E_RELEASE", "")

FLOW = """
apiVersion: ripple.dev/v1alpha1
kind: Broker
metadata: {name: default}
---
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {name: validate}
spec:
  handler: validate:handle
  source:
    inline: |
      def handle(event):
          print("validated", event["id"], flush=True)
          return {"type": "order.validated", "source": "/validate", "data": {"order": event["id"]}}
---
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {name: ship}
spec:
  handler: ship:handle
  scale: {minScale: 1}
  source:
    inline: |
      def handle(event):
          print("shipped", event.data["order"], flush=True)
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: on-placed}
spec:
  filter: {attributes: {type: order.placed}}
  subscriber: {ref: {kind: Function, name: validate}}
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: on-validated}
spec:
  filter: {attributes: {type: order.validated}}
  subscriber: {ref: {kind: Function, name: ship}}
"""


@pytest.mark.skipif(not (os.environ.get("KUBECONFIG_E2E") and RELEASE),
                    reason="needs a real cluster with the chart installed (KUBECONFIG_E2E, RIPPLE_E2E_RELEASE)")
def test_an_event_flows_through_the_installed_release(crds_installed, namespace):
    plane = crds_installed
    release_namespace, release = RELEASE.split("/")
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=FLOW)
    for trigger in ("on-placed", "on-validated"):
        plane.kubectl("wait", "--for=condition=Ready", f"trigger/{trigger}", "-n", namespace, "--timeout=120s")
    event = {"specversion": "1.0", "id": "order-1", "source": "/e2e", "type": "order.placed"}
    post = plane.kubectl(
        "run", "send-order", "-n", namespace, "--rm", "-i", "--restart=Never", "--image=curlimages/curl:8.10.1",
        "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
        "-H", "Content-Type: application/cloudevents+json", "--data", json.dumps(event),
        f"http://{release}-ingress.{release_namespace}.svc/{namespace}/default",
        timeout=180,
    )
    assert post.stdout.strip().endswith("202")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        logs = plane.kubectl("logs", "-n", namespace, "-l", "ripple.dev/function=ship", "--tail=50", check=False)
        if "shipped order-1" in logs.stdout:
            return
        time.sleep(2)
    raise AssertionError(f"the reply never reached ship; its logs:\n{logs.stdout}\n{logs.stderr}")

