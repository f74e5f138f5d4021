"""Puts the SDK on sys.path (the tests run without installing it) and builds clients over a FakeBank."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from fakebank import APP_ID, SECRET, FakeBank

SDK_ROOT = Path(__file__).resolve().parents[1]
if str(SDK_ROOT) not in sys.path:
    sys.path.insert(0, str(SDK_ROOT))


@pytest.fixture
def make_client():
    """Build a PartnerClient over a FakeBank, without backoff sleeps; closes them afterwards."""
    from openbank_partner import PartnerClient

    clients = []

    def make(bank: FakeBank, **kwargs: object) -> PartnerClient:
        kwargs.setdefault("backoff", 0)
        kwargs.setdefault("secret", SECRET)
        client = PartnerClient(kwargs.pop("base_url", "https://bank.test"), APP_ID,
                               transport=httpx.MockTransport(bank), **kwargs)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
