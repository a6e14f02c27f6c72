"""Deterministic synthetic population generator (FHIR R4 JSON) for the EHC platform.

    from seed import generate, total_hint
    for resource in generate(1000, seed=1):
        ...
"""

from .generator import SEED_REFERENCE_DATE, generate, total_hint
from .progress import ProgressBar

count_resources = total_hint

__all__ = ["SEED_REFERENCE_DATE", "ProgressBar", "count_resources", "generate", "total_hint"]
