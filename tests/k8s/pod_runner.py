"""A stand-in for the kubelet: runs the Ripple runtime for each Function pod the fake nodes mark ready.

kwok's nodes run nothing, so a pod's container never starts. This runner watches Function pods and, for each one
with a pod IP (kwok hands out loopback addresses, 127.10.0.0/16), starts ``ripple function serve`` on that IP
with the container's own arguments and environment, and the inline code from the pod's ConfigMap volume — as a
kubelet would run the image. When the pod goes away, so does the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch

from ripple.kube.names import FUNCTION_LABEL


class PodRunner:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.started: list[str] = []
        self.work = Path(tempfile.mkdtemp(prefix="ripple-pods-"))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        api = await config.new_client_from_config(config_file=str(self.kubeconfig))
        self._api = api
        self._task = asyncio.create_task(self._watch(api))

    async def _watch(self, api: client.ApiClient) -> None:
        core = client.CoreV1Api(api)
        while True:
            async with watch.Watch() as stream:
                async for event in stream.stream(core.list_pod_for_all_namespaces, label_selector=FUNCTION_LABEL,
                                                 timeout_seconds=300):
                    pod = api.sanitize_for_serialization(event["object"])
                    name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                    ip = (pod.get("status") or {}).get("podIP")
                    gone = event["type"] == "DELETED" or (pod["metadata"].get("deletionTimestamp") is not None)
                    if gone:
                        await self._stop(name)
                    elif ip and name not in self.processes:
                        await self._run(name, ip, pod, core)

    async def _run(self, name: str, ip: str, pod: dict[str, Any], core: client.CoreV1Api) -> None:
        container = pod["spec"]["containers"][0]
        args = list(container["args"])
        args[args.index("--host") + 1] = ip
        code_dir = self.work / name.replace("/", "_")
        for volume in pod["spec"].get("volumes") or []:
            configmap = volume.get("configMap")
            if configmap:
                data = (await core.read_namespaced_config_map(configmap["name"], pod["metadata"]["namespace"])).data
                for item in configmap.get("items") or [{"key": k, "path": k} for k in data]:
                    target = code_dir / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(data[item["key"]])
        if "--path" in args:
            args[args.index("--path") + 1] = str(code_dir)
        env = {**os.environ, **{e["name"]: e.get("value", "") for e in container.get("env") or []}}
        self.processes[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ripple", *args, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.started.append(name)

    async def _stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None and process.returncode is None:
            process.terminate()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()

    def running(self, prefix: str = "") -> list[str]:
        return [name for name, p in self.processes.items() if p.returncode is None and name.startswith(prefix)]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for name in list(self.processes):
            await self._stop(name)
        await self._api.close()
