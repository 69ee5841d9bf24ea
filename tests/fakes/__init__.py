"""Test doubles shared across the test suite: `FakeGateway` (in-memory Azure) and `FakeArmTransport`.

`tests.fakes.gateway.FakeGateway` implements `reconciler.cloud.gateway.Gateway` for engine, executor and
daemon tests; `tests.fakes.azure_transport.FakeArmTransport` drives the real Azure adapter through the SDK
pipeline with scripted HTTP answers.
"""
