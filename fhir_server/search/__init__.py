"""FHIR search: query syntax, the IR, the search-parameter registry, FHIRPath compilation and
index extraction. Pure: no Flask, no database."""
