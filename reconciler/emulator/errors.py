"""ARM error responses of the emulator: one exception type carrying status, code and message.

Raised by the request handlers in `server.py` and the resource rules in `resource.py`/`store.py`; the
server turns it into the ARM error body `{"error": {"code": ..., "message": ...}}`. The codes and messages
follow the recorded Azure traffic where it shows them (`ResourceNotFound`, `InvalidContainerGroupUpdate`,
`MissingApiVersionParameter`, `NoRegisteredProviderFound` ...).
"""

from __future__ import annotations

from typing import Any

RESOURCE_TYPE = "Microsoft.ContainerInstance/containerGroups"


class ArmError(Exception):
    """An error the emulator answers with an ARM error body and the given HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def not_found(resource_group: str, name: str) -> ArmError:
    # The wording is ARM's own (see the recordings): the resource type, the group and the aka.ms link.
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{RESOURCE_TYPE}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def invalid_update(name: str, *, wording: str = "generic", prop: str | None = None) -> ArmError:
    """ACI's refusal of an update that needs a delete. `generic` is the sentence Azure has answered with for
    years (quoted in MicrosoftDocs/azure-docs#38067, #65195 and others); `per-property` names the property,
    as newer answers do. No verbatim public record of the newer sentence was found, so its wording here is
    the emulator's; clients must (and the reconciler does) classify by the code, never by the text."""
    if wording == "per-property" and prop:
        message = (
            f"The updates on container group '{name}' are invalid. Updating property '{prop}' is not "
            "supported; you must delete the container group first and then create a new one."
        )
    else:
        message = (
            f"The updates on container group '{name}' are invalid. If you are going to update the os type, "
            "restart policy, network profile, CPU, memory or GPU resources for a container group, you must "
            "delete it first and then create a new one."
        )
    return ArmError(400, "InvalidContainerGroupUpdate", message)


def bad_request(message: str, code: str = "InvalidRequestContent") -> ArmError:
    return ArmError(400, code, message)


def quota_reached(quota: str, location: str, limit: float, usage: float, requested: float) -> ArmError:
    """ACI's refusal of a group beyond the subscription's quota in a region: 400, the quota named
    (`StandardCores`, or `<sku>Cores` for GPUs, which most subscriptions have none of). Evidence: errors.md,
    section 5."""
    return ArmError(
        400,
        "ContainerGroupQuotaReached",
        f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota '{quota}' "
        f"exceeded in region '{location}'. Limit: '{limit:g}', Usage: '{usage:g}' "
        f"Requested: '{requested:g}'.",
    )


def no_capacity(location: str, body: dict[str, Any]) -> ArmError:
    """The region cannot place the group right now: 409 `ServiceUnavailable` (errors.md, section 6), which a
    client may retry later or elsewhere. The message has no final full stop, as Azure's has none."""
    props = body.get("properties") or {}
    cpu = memory = 0.0
    gpus: dict[str, int] = {}
    for container in props.get("containers") or []:
        requests = (((container or {}).get("properties") or {}).get("resources") or {}).get("requests") or {}
        cpu += float(requests.get("cpu") or 0)
        memory += float(requests.get("memoryInGB") or 0)
        gpu = requests.get("gpu")
        if isinstance(gpu, dict):
            sku = str(gpu.get("sku", ""))
            gpus[sku] = gpus.get(sku, 0) + int(gpu.get("count") or 0)
    text = (
        f"The requested resource is not available in the location '{location}' at this moment. Please retry "
        f"with a different resource request or in another location. Resource requested: '{cpu:g}' CPU "
        f"'{memory:g}' GB memory '{props.get('osType', 'Linux')}' OS"
    )
    for sku, count in gpus.items():
        text += f" '{count}' '{sku}' GPU"
    if props.get("subnetIds"):
        text += " virtual network"
    return ArmError(409, "ServiceUnavailable", text)


def inaccessible_image(group: str, image: str) -> ArmError:
    """An image ACI cannot pull, refused at PUT time (errors.md, section 7)."""
    return ArmError(
        400,
        "InaccessibleImage",
        f"The image '{image}' in container group '{group}' is not accessible. Please check the image and "
        "registry credential.",
    )
