"""`GET /msi/token`: a managed-identity token endpoint compatible with azure-identity's App Service
variables `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, so `DefaultAzureCredential` works end to end against
the emulator. Called by `server.py` (also on its plain-http loopback port)."""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from reconciler.emulator.core import EmulatorCore


def token(core: EmulatorCore, request: web.Request) -> web.Response:
    if request.headers.get("X-IDENTITY-HEADER") != core.identity_header:
        return web.json_response(
            {"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or wrong."}, status=401
        )
    resource = request.query.get("resource")
    if not resource:
        return web.json_response(
            {"statusCode": 400, "message": "The 'resource' query parameter is required."}, status=400
        )
    # Real time, not the emulator's clock: azure-identity judges expiry by the wall clock.
    expires = int(time.time()) + 3600
    return web.json_response(
        {
            "access_token": "emulator-" + secrets.token_urlsafe(32),
            "expires_on": str(expires),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": request.query.get("client_id", "00000000-0000-0000-0000-00000000e4d1"),
        }
    )
