"""National immunisation programme (NIP) child schedule as data (DOMAIN.md §8.1, §8.2).

2021 edition with the DTaP change effective 2025-01-01 (IPV 2/3 m, bOPV 4 m/4 y).

Rows with ``era`` ``None`` apply throughout. The diphtheria–tetanus–pertussis slots exist
twice: ``era="2021"`` (DTaP 3, 4, 5, 18 m + DT 6 y) and ``era="2025"`` (DTaP 2, 4, 6, 18 m, 6 y).
Rule for a slot, by dose date: use the 2025 row if its due date is on or after
:data:`DTAP_CHANGE_DATE`, otherwise the 2021 row. Hence a DT dose is only ever due before
2025-01-01 and a fifth DTaP dose only on or after it. The series size of the DTaP family is 5
when the 6-year slot falls on or after the change date, else 4 (and DT is a 1-dose series).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

SERIES_ID = "NIP-2021+DTaP-2025"
DTAP_CHANGE_DATE = date(2025, 1, 1)


@dataclass(frozen=True, slots=True)
class Vaccine:
    code: str  # {base}/CodeSystem/cn-nip-vaccine
    display: str
    cvx: str
    cvx_display: str
    target_diseases: tuple[tuple[str, str], ...]  # SNOMED CT disorder codes
    route: str  # v3-RouteOfAdministration
    route_display: str
    site: str  # {base}/CodeSystem/vaccination-site
    dose_ml: float
    live: bool


_HEPB = (("66071002", "Viral hepatitis type B"),)
_TB = (("56717001", "Tuberculosis"),)
_POLIO = (("398102009", "Acute poliomyelitis"),)
_DIPH = ("397430003", "Diphtheria caused by Corynebacterium diphtheriae")
_TET = ("76902006", "Tetanus")
_PERT = ("27836007", "Pertussis")
_MMR = (("14189004", "Measles"), ("36989005", "Mumps"), ("36653000", "Rubella"))
_JE = (("52947006", "Japanese encephalitis virus disease"),)
_MEN = (("23511006", "Meningococcal infectious disease"),)
_HEPA = (("40468003", "Viral hepatitis, type A"),)

_IM = ("IM", "Injection, intramuscular")
_SC = ("SQ", "Injection, subcutaneous")
_ID = ("IDINJ", "Injection, intradermal")
_PO = ("PO", "Swallow, oral")

VACCINES: dict[str, Vaccine] = {
    v.code: v
    for v in (
        Vaccine("HepB", "乙肝疫苗", "08", "Hep B, adolescent or pediatric", _HEPB, *_IM, "1", 0.5,
                False),
        Vaccine("BCG", "卡介苗", "19", "BCG", _TB, *_ID, "1", 0.1, True),
        Vaccine("IPV", "脊灰灭活疫苗", "10", "IPV", _POLIO, *_IM, "3", 0.5, False),
        Vaccine("bOPV", "二价脊灰减毒活疫苗", "178", "OPV bivalent", _POLIO, *_PO, "7", 0.1, True),
        Vaccine("DTaP", "百白破疫苗", "20", "DTaP", (_DIPH, _TET, _PERT), *_IM, "3", 0.5, False),
        Vaccine("DT", "白破疫苗", "28", "DT (pediatric)", (_DIPH, _TET), *_IM, "2", 0.5, False),
        Vaccine("MMR", "麻腮风疫苗", "03", "MMR", _MMR, *_SC, "2", 0.5, True),
        Vaccine("JE-L", "乙脑减毒活疫苗", "129", "Japanese Encephalitis, unspecified formulation",
                _JE, *_SC, "2", 0.5, True),
        Vaccine("MPSV-A", "A群流脑多糖疫苗", "108", "meningococcal, unspecified formulation",
                _MEN, *_SC, "1", 0.5, False),
        Vaccine("MPSV-AC", "A群C群流脑多糖疫苗", "108", "meningococcal, unspecified formulation",
                _MEN, *_SC, "1", 0.5, False),
        Vaccine("HepA-L", "甲肝减毒活疫苗", "85", "Hep A, unspecified formulation", _HEPA, *_SC,
                "2", 1.0, True),
    )
}


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    slot: str  # one dose position of a disease family, e.g. "DTP-5"
    vaccine: str
    dose: int
    series_doses: int  # None-era rows; DTaP rows are resolved (see module doc)
    months: int  # age at due date: months + years*12 (calendar months after birth)
    era: str | None = None


# (slot, vaccine, dose number, series doses, age in months, era)
SCHEDULE: tuple[ScheduleRow, ...] = (
    ScheduleRow("HepB-1", "HepB", 1, 3, 0),
    ScheduleRow("HepB-2", "HepB", 2, 3, 1),
    ScheduleRow("HepB-3", "HepB", 3, 3, 6),
    ScheduleRow("BCG-1", "BCG", 1, 1, 0),
    ScheduleRow("Polio-1", "IPV", 1, 2, 2),
    ScheduleRow("Polio-2", "IPV", 2, 2, 3),
    ScheduleRow("Polio-3", "bOPV", 1, 2, 4),
    ScheduleRow("Polio-4", "bOPV", 2, 2, 48),
    ScheduleRow("DTP-1", "DTaP", 1, 4, 3, "2021"),
    ScheduleRow("DTP-2", "DTaP", 2, 4, 4, "2021"),
    ScheduleRow("DTP-3", "DTaP", 3, 4, 5, "2021"),
    ScheduleRow("DTP-4", "DTaP", 4, 4, 18, "2021"),
    ScheduleRow("DTP-5", "DT", 1, 1, 72, "2021"),
    ScheduleRow("DTP-1", "DTaP", 1, 5, 2, "2025"),
    ScheduleRow("DTP-2", "DTaP", 2, 5, 4, "2025"),
    ScheduleRow("DTP-3", "DTaP", 3, 5, 6, "2025"),
    ScheduleRow("DTP-4", "DTaP", 4, 5, 18, "2025"),
    ScheduleRow("DTP-5", "DTaP", 5, 5, 72, "2025"),
    ScheduleRow("MMR-1", "MMR", 1, 2, 8),
    ScheduleRow("MMR-2", "MMR", 2, 2, 18),
    ScheduleRow("JE-1", "JE-L", 1, 2, 8),
    ScheduleRow("JE-2", "JE-L", 2, 2, 24),
    ScheduleRow("MenA-1", "MPSV-A", 1, 2, 6),
    ScheduleRow("MenA-2", "MPSV-A", 2, 2, 9),
    ScheduleRow("MenAC-1", "MPSV-AC", 1, 2, 36),
    ScheduleRow("MenAC-2", "MPSV-AC", 2, 2, 72),
    ScheduleRow("HepA-1", "HepA-L", 1, 1, 18),
)

ERA_CHANGE: dict[str, tuple[str, str, date]] = {"DTP": ("2021", "2025", DTAP_CHANGE_DATE)}


def add_months(d: date, months: int) -> date:
    """Calendar months after ``d`` (day clamped to the month's end)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class DueDose:
    slot: str
    family: str  # slot prefix, e.g. "DTP"
    vaccine: str
    dose: int
    series_doses: int
    due: date


def due_doses(birth: date, until: date) -> list[DueDose]:
    """Every NIP dose due on or before ``until`` for a child born on ``birth``, by due date."""
    by_slot: dict[str, list[ScheduleRow]] = {}
    for row in SCHEDULE:
        by_slot.setdefault(row.slot, []).append(row)
    family_last_due: dict[str, date] = {}
    for slot, rows in by_slot.items():
        family = slot.rsplit("-", 1)[0]
        family_last_due[family] = max(
            family_last_due.get(family, date.min), add_months(birth, rows[0].months)
        )
    out: list[DueDose] = []
    for slot, rows in by_slot.items():
        family = slot.rsplit("-", 1)[0]
        row = rows[0]
        if family in ERA_CHANGE:
            old_era, new_era, change = ERA_CHANGE[family]
            new = next(r for r in rows if r.era == new_era)
            old = next(r for r in rows if r.era == old_era)
            row = new if add_months(birth, new.months) >= change else old
        due = add_months(birth, row.months)
        series = row.series_doses
        if family in ERA_CHANGE and row.vaccine != "DT":
            # DTaP series size follows the era of the last (6-year) slot
            series = 5 if family_last_due[family] >= ERA_CHANGE[family][2] else 4
        if due <= until:
            out.append(DueDose(slot, family, row.vaccine, row.dose, series, due))
    out.sort(key=lambda d: (d.due, d.slot))
    return out
