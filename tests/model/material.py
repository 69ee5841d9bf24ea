"""Material for the manifest model tests: a minimal valid document and Microsoft's examples and recordings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "azure"
EXAMPLES = SHARED / "spec-2023-05-01" / "examples"
RECORDINGS = SHARED / "recordings"

BASE: dict[str, Any] = {
    "name": "web",
    "resourceGroup": "rg-test",
    "location": "westeurope",
    "properties": {
        "osType": "Linux",
        "containers": [
            {
                "name": "web",
                "properties": {
                    "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    "ports": [{"port": 80}],
                },
            }
        ],
    },
}


def base_doc() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def spec_examples() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file name, request body, 200/201 response body) of every spec example that creates a group."""
    out = []
    for path in sorted(EXAMPLES.glob("*.json")):
        data = json.loads(path.read_text())
        body = data.get("parameters", {}).get("containerGroup")
        if body is None:
            continue
        responses = data.get("responses", {})
        response = (responses.get("200") or responses.get("201") or {}).get("body", {})
        out.append((path.name, body, response))
    return out


def recorded_bodies(method: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(cassette, api-version, JSON body) of every request (PUT) or response (GET) on a container group."""
    out = []
    for path in sorted(RECORDINGS.rglob("*.yaml")):
        cassette = yaml.safe_load(path.read_text())
        for interaction in cassette["interactions"]:
            request = interaction["request"]
            uri = request["uri"]
            if request["method"] != method or "/containerGroups/" not in uri:
                continue
            if "/containers/" in uri or "containerGroupProfiles" in uri:
                continue
            raw = request["body"] if method == "PUT" else interaction["response"]["body"]["string"]
            if isinstance(raw, dict):
                raw = raw.get("string")
            if isinstance(raw, bytes):
                raw = raw.decode()
            if not raw:
                continue
            if method == "GET" and interaction["response"]["status"]["code"] != 200:
                continue
            try:
                body = json.loads(raw)
            except ValueError:
                continue
            if "properties" not in body:
                continue
            version = uri.split("api-version=")[1].split("&")[0]
            out.append((str(path.relative_to(RECORDINGS)), version, body))
    return out
