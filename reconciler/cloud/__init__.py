"""The only code that talks to Azure: the gateway protocol and its azure-mgmt-containerinstance adapter.

Errors are classified here, where they enter (retryable or stalled). Called by execution and engine.
"""
