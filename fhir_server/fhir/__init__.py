"""I/O-free FHIR helpers: JSON, structure validation, summaries, ids, dates, patch."""
