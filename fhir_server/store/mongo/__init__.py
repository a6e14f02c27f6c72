"""The MongoDB store (pymongo): ``FHIR_STORE=mongodb://host/database``."""

from fhir_server.store.mongo.store import MongoStore

__all__ = ["MongoStore"]
