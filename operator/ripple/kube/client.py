"""The Kubernetes API client: loading its configuration, and the few calls the operator makes (server-side apply,
reads, deletes), over kubernetes_asyncio."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ripple.api.models import Resource
from ripple.kube.resources import GROUP, VERSION, plural

__all__ = ["APPLY", "FIELD_MANAGER", "Kube", "load_kube_config"]

FIELD_MANAGER = "ripple-operator"
APPLY = "application/apply-patch+yaml"
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


async def load_kube_config() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)

    async def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply: the object's fields as given become the operator's, conflicts forced."""
        kind, name, namespace = obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")
        # Any: the client's stubs do not declare _content_type, which its methods accept.
        args: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
        if kind == "ClusterRole":
            await self.rbac.patch_cluster_role(name, obj, **args)
        elif kind == "ClusterRoleBinding":
            await self.rbac.patch_cluster_role_binding(name, obj, **args)
        elif kind == "Role":
            await self.rbac.patch_namespaced_role(name, namespace, obj, **args)
        elif kind == "RoleBinding":
            await self.rbac.patch_namespaced_role_binding(name, namespace, obj, **args)
        elif kind == "ServiceAccount":
            await self.core.patch_namespaced_service_account(name, namespace, obj, **args)
        elif kind == "Deployment":
            await self.apps.patch_namespaced_deployment(name, namespace, obj, **args)
        elif kind == "Service":
            await self.core.patch_namespaced_service(name, namespace, obj, **args)
        elif kind == "ConfigMap":
            await self.core.patch_namespaced_config_map(name, namespace, obj, **args)
        elif kind == "NetworkPolicy":
            await self.networking.patch_namespaced_network_policy(name, namespace, obj, **args)
        elif kind == "Secret":
            await self.core.patch_namespaced_secret(name, namespace, obj, **args)
        else:
            raise ValueError(f"cannot apply {kind}")

    async def create_deployment(self, obj: dict[str, Any]) -> bool:
        """Create the Deployment unless it exists; True when this call created it."""
        try:
            # The stub wants a V1Deployment body; the client sends a dict as it is.
            await self.apps.create_namespaced_deployment(obj["metadata"]["namespace"], obj,  # type: ignore[arg-type]
                                                         field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def deployment_replicas(self, namespace: str, name: str) -> tuple[int, int] | None:
        """(spec.replicas, status.readyReplicas) of a Deployment, or None when it does not exist."""
        try:
            deployment = await self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return deployment.spec.replicas or 0, (deployment.status.ready_replicas or 0) if deployment.status else 0

    async def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether a Secret exists, asked for its metadata only: its values never reach the operator."""
        try:
            response = await self.api_client.call_api(
                f"/api/v1/namespaces/{namespace}/secrets/{name}", "GET", auth_settings=["BearerToken"],
                header_params={"Accept": PARTIAL_METADATA}, _preload_content=False, _return_http_data_only=True,
                _request_timeout=30,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        async with response:
            if response.status == 404:
                return False
            if response.status >= 400:
                raise ApiException(status=response.status, reason=f"reading Secret {namespace}/{name}")
        return True

    async def secret_value(self, namespace: str, name: str, key: str) -> bytes | None:
        """One key of a Secret, ``None`` when the Secret or the key is missing. Only where the value itself is
        needed (dropping a PostgreSQL source's replication slot; an EventPolicy's token, of which only the
        SHA-256 is kept); the value is never logged or kept."""
        try:
            secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        encoded = (secret.data or {}).get(key)
        return None if encoded is None else base64.b64decode(encoded)

    async def delete_rbac(self, kind: str, name: str, namespace: str = "") -> None:
        """Delete a Role, RoleBinding (in ``namespace``), ClusterRole or ClusterRoleBinding; gone is fine."""
        calls = {
            "Role": lambda: self.rbac.delete_namespaced_role(name, namespace),
            "RoleBinding": lambda: self.rbac.delete_namespaced_role_binding(name, namespace),
            "ClusterRole": lambda: self.rbac.delete_cluster_role(name),
            "ClusterRoleBinding": lambda: self.rbac.delete_cluster_role_binding(name),
        }
        try:
            await calls[kind]()
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def delete_configmap(self, namespace: str, name: str) -> None:
        try:
            await self.core.delete_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def delete_owned_network_policy(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Delete the NetworkPolicy if ``owner_uid`` owns it (one of someone else's, of the same name, stays);
        True when it was deleted. Gone, or not ours to read (RBAC without NetworkPolicies), is nothing to do."""
        try:
            policy = await self.networking.read_namespaced_network_policy(name, namespace)
        except ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise
        owners = policy.metadata.owner_references or []
        if not any(owner.uid == owner_uid for owner in owners):
            return False
        # The precondition: should it have been replaced since it was read, the new one is not deleted unseen.
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=policy.metadata.uid))
        try:
            await self.networking.delete_namespaced_network_policy(name, namespace, body=options)
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def ripple_object(self, kind: type[Resource], namespace: str, name: str) -> dict[str, Any] | None:
        """One of Ripple's objects as the API server has it, ``None`` when there is none."""
        try:
            return dict(await self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural(kind), name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def ripple_objects(self, kind: type[Resource], namespace: str | None = None) -> list[dict[str, Any]]:
        """All of one of Ripple's kinds, in ``namespace`` or in the whole cluster."""
        if namespace is None:
            found = await self.custom.list_cluster_custom_object(GROUP, VERSION, plural(kind))
        else:
            found = await self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural(kind))
        return list(found.get("items", []))
