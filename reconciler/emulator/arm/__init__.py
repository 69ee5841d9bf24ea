"""ARM's REST API for Microsoft.ContainerInstance/containerGroups, one module per resource or operation.

`pipeline.py` is the way in (auth, api-version, throttling, quotas, faults, then dispatch); `groups.py`
serves a container group (GET, PUT, PATCH, DELETE), `lists.py` the lists, `actions.py` restart/stop/start,
`logs.py` a container's logs and `operations.py` the async-operation status. They act on the
`EmulatorCore`; `server.py` calls `pipeline.handle_arm` for every ARM path.
"""
