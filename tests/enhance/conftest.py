from __future__ import annotations

import pytest

from .fake_servers import FakeServer


@pytest.fixture
def serve():
    """Start fake LLM servers for a test; all are shut down after it."""
    servers = []

    def start(behaviour, delay=0.0):
        server = FakeServer(behaviour, delay)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
