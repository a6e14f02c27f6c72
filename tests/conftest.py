"""Fixtures shared by every test: a real SQLite store in a temporary directory, the app, a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.store.sqlite import SqliteStore

FHIR_JSON = "application/fhir+json"


def pytest_report_header(config: pytest.Config) -> str:
    from tests import mongo_server

    return f"MongoDB tests: {mongo_server.describe()}"


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """The MongoDB server of this run (``FHIR_TEST_MONGO_URI`` or the mongoeco emulator), or a skip."""
    from tests import mongo_server

    uri = mongo_server.server_uri()
    if uri is None:
        pytest.skip(f"no MongoDB server: {mongo_server.skip_reason()}")
    return uri


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # profiles off: these fixtures serve tests of other features, written with official examples,
    # Synthea and hand-made resources (the profile tests build their own apps)
    return Settings(store_url=f"sqlite:///{tmp_path / 'fhir.db'}", access_log=False, auth=False,
                    enforce_profiles="off")


@pytest.fixture
def store(settings: Settings) -> Iterator[SqliteStore]:
    s = SqliteStore.from_url(settings.store_url)
    yield s
    s.close()


@pytest.fixture
def app(settings: Settings, store: SqliteStore) -> Flask:
    return create_app(settings, store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json=body, headers={"Content-Type": FHIR_JSON, **headers})
