"""One function per FHIR interaction (R4 http.html). They return data; ``api/`` renders it.

Batch and transaction entries (and the CLI's importer) call these same functions: no HTTP round trip.
"""
