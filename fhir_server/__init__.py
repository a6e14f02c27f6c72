"""ehc-fhir: a FHIR R4 (4.0.1) server for regional electronic-health-card platforms."""

__version__ = "0.1.0"
FHIR_VERSION = "4.0.1"
