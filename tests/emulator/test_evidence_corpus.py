"""Checks the corpus of recorded Azure traffic under `tests/emulator/evidence/` and its loader.

The corpus is the emulator's outside evidence: traffic that other official clients (Azure PowerShell, the
.NET, Java and JavaScript SDKs) recorded against real Azure. These tests make sure it stays what `SOURCE.md`
says it is (same files, same bytes), that `evidence.py` reads every format in it, and that it is big and
varied enough to be worth replaying. Run with `-s` to see how many interactions each client and
api-version contributes.
"""

from __future__ import annotations

import collections
import hashlib
import re

from tests.emulator.evidence import (
    CLIENTS,
    EVIDENCE,
    Interaction,
    evidence_files,
    is_container_group,
    is_operation_poll,
    load_file,
    load_interactions,
)

# Clients whose recordings the emulator's own tests already replay; the corpus is meant to add others.
_ALREADY_COVERED = {"azure-cli", "azure-sdk-for-python"}


def _listed_in_source() -> dict[str, str]:
    """File (relative to the evidence folder) -> sha256, as SOURCE.md lists them."""
    text = (EVIDENCE / "SOURCE.md").read_text(encoding="utf-8")
    listed: dict[str, str] = {}
    for section in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        name = re.match(r"`([^`]+)`", section)
        digest = re.search(r"^- sha256: `([0-9a-f]{64})`", section, flags=re.MULTILINE)
        assert name is not None, section[:200]
        assert digest is not None, section[:200]
        listed[name.group(1)] = digest.group(1)
    # The .NET recordings are listed in their own folder's SOURCE.md, one table row per file.
    dotnet = (EVIDENCE / "azure-sdk-for-net" / "SOURCE.md").read_text(encoding="utf-8")
    for row in re.finditer(
        r"^\| `([^`]+\.json)` \| `[0-9a-f]{40}` \| `([0-9a-f]{64})` \|", dotnet, re.MULTILINE
    ):
        listed[f"azure-sdk-for-net/{row.group(1)}"] = row.group(2)
    return listed


def _interaction(uri: str) -> Interaction:
    return Interaction("c", "f", 0, "GET", uri, None, {}, None, 200, {}, None)


def test_every_recording_is_listed_in_source_md_with_its_sha256() -> None:
    on_disk = {
        path.relative_to(EVIDENCE).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in evidence_files()
    }
    assert on_disk == _listed_in_source()


def test_every_recording_loads_into_interactions_with_string_headers() -> None:
    for path in evidence_files():
        interactions = load_file(path)
        assert interactions, path
        for interaction in interactions:
            assert interaction.method in {"GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"}, interaction
            assert 100 <= interaction.status < 600, interaction
            assert interaction.uri.startswith(("https://", "http://")), interaction
            for headers in (interaction.request_headers, interaction.response_headers):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())


def test_container_group_bodies_are_parsed_json_not_text() -> None:
    bodies = [
        i.response_body
        for i in load_interactions()
        if is_container_group(i) and i.response_body is not None and not i.uri.split("?")[0].endswith("/logs")
    ]
    assert bodies
    assert all(isinstance(body, dict) for body in bodies)


def test_corpus_has_150_container_group_interactions_from_three_other_clients() -> None:
    interactions = [i for i in load_interactions() if is_container_group(i)]
    clients = {i.client for i in interactions} - _ALREADY_COVERED
    assert clients <= set(CLIENTS)
    assert len(clients) >= 3
    assert len([i for i in interactions if i.client not in _ALREADY_COVERED]) >= 150

    by_client = collections.Counter(i.client for i in interactions)
    by_version = collections.Counter((i.client, i.api_version or "-") for i in interactions)
    polls = collections.Counter(i.client for i in load_interactions() if is_operation_poll(i))
    print()
    for client, count in sorted(by_client.items()):
        versions = ", ".join(f"{v}: {n}" for (c, v), n in sorted(by_version.items()) if c == client)
        print(f"{client}: {count} container-group interactions ({versions}); {polls[client]} operation polls")


def test_container_group_matching_covers_actions_and_ignores_case() -> None:
    base = "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/"
    for suffix in (
        "Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01",
        "Microsoft.ContainerInstance/containerGroups/cg?api-version=2023-05-01",
        "microsoft.containerinstance/containergroups/cg?api-version=2023-05-01",
        "Microsoft.ContainerInstance/containerGroups/cg/restart?api-version=2023-05-01",
        "Microsoft.ContainerInstance/containerGroups/cg/stop?api-version=2023-05-01",
        "Microsoft.ContainerInstance/containerGroups/cg/start?api-version=2023-05-01",
        "Microsoft.ContainerInstance/containerGroups/cg/containers/c1/logs?tail=2&api-version=2023-05-01",
    ):
        assert is_container_group(_interaction(base + suffix)), suffix
    assert not is_container_group(_interaction(base + "Microsoft.Network/virtualNetworks/v"))
    poll = (
        "https://management.azure.com/subscriptions/s/providers/microsoft.containerinstance/locations/eastus/"
    )
    assert is_operation_poll(_interaction(poll + "operations/abc?api-version=2018-06-01"))
    assert not is_container_group(_interaction(poll + "operations/abc?api-version=2018-06-01"))
