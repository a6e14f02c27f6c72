"""The application factory: ``create_app(settings)`` builds the services and wires the blueprints."""

from __future__ import annotations

from flask import Flask

from fhir_server.api import (
    auth_views,
    bundle_views,
    errors,
    fhir_views,
    observability,
    operation_views,
    terminology_views,
    validate_views,
)
from fhir_server.auth import audit_writer
from fhir_server.config import Settings
from fhir_server.fhir import structure
from fhir_server.interactions.context import Services
from fhir_server.store import Store, open_store

#: The modules whose views add routes to the ``fhir`` blueprint (imported for that).
VIEW_MODULES = (fhir_views, bundle_views, operation_views, terminology_views, validate_views)


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    settings = settings or Settings.from_env()
    structure.RESOURCE_TYPES  # load the R4 tables now, not on the first request  # noqa: B018
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.url_map.strict_slashes = False
    app.extensions["fhir"] = Services(settings, store or open_store(settings))
    audit_writer.writer().interval = settings.audit_interval_ms / 1000  # one writer per process
    observability.register(app)
    errors.register(app)
    app.register_blueprint(observability.health)
    app.register_blueprint(fhir_views.fhir)
    app.register_blueprint(auth_views.auth)  # OAuth endpoints, SMART discovery
    return app
