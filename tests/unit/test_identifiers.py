from __future__ import annotations

from datetime import date

import pytest

from fhir_server.fhir import identifiers as ids
from fhir_server.fhir.identifiers import (
    DEFAULT_CANONICAL_BASE,
    cin_birth_date,
    cin_check_char,
    cin_sex,
    identifier_systems,
    is_valid_cin,
    is_valid_ehc_id,
    is_valid_uscc,
    make_cin,
    uscc_check_char,
)

DOMAIN_VECTORS = ("34052419800101001X", "11010020171225006X")


@pytest.mark.parametrize("value", DOMAIN_VECTORS)
def test_cin_domain_vectors_valid(value: str) -> None:
    assert cin_check_char(value[:17]) == "X"
    assert is_valid_cin(value)


def test_cin_weights_are_the_published_ones() -> None:
    # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 (GB 11643); compute by hand for the first vector
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    body = "34052419800101001"
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    assert "10X98765432"[total % 11] == "X"


@pytest.mark.parametrize(
    "value",
    [
        "340524198001010010",  # wrong check char
        "34052419800101002X",  # altered sequence digit
        "44052419800101001X",  # altered area digit
        "34052419800101001x",  # lower-case x is not normalised here
        "3405241980010100X",  # too short
        "340524800101001",  # 15-digit old form
        "04052419800101001X",  # leading zero
    ],
)
def test_cin_altered_invalid(value: str) -> None:
    assert not is_valid_cin(value)


def test_cin_impossible_and_future_dates() -> None:
    feb30 = make_cin_unchecked("110101", "20230230", "001")
    assert not is_valid_cin(feb30)
    future = make_cin("110101", date(2030, 1, 1), 1)
    assert not is_valid_cin(future, today=date(2026, 6, 30))
    assert is_valid_cin(future, today=date(2030, 1, 1))
    with pytest.raises(ValueError):
        cin_birth_date(feb30)


def make_cin_unchecked(area: str, ymd: str, seq: str) -> str:
    body = area + ymd + seq
    return body + cin_check_char(body)


def test_cin_birth_date_and_sex() -> None:
    assert cin_birth_date("34052419800101001X") == date(1980, 1, 1)
    assert cin_sex("34052419800101001X") == "male"  # digit 17 = 1
    assert cin_birth_date("11010020171225006X") == date(2017, 12, 25)
    assert cin_sex("11010020171225006X") == "female"  # digit 17 = 6


def test_make_cin_roundtrip() -> None:
    for seq in (0, 1, 2, 999):
        v = make_cin("510107", date(2024, 2, 29), seq)
        assert is_valid_cin(v)
        assert cin_birth_date(v) == date(2024, 2, 29)
        assert cin_sex(v) == ("male" if seq % 2 else "female")
    with pytest.raises(ValueError):
        make_cin("51010", date(2000, 1, 1), 1)
    with pytest.raises(ValueError):
        cin_check_char("1234")


# Published USCCs of large companies (recalled, not looked up). Each check character matching the
# algorithm by luck has probability 1/31.
KNOWN_USCC = (
    "914403001922038216",
    "9144030071526726XG",
    "91330100716105852F",
    "91110000802100433B",
    "91110108551385082Q",
    "91440300708461136T",
)

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def reference_uscc_check(body: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    check = 31 - total % 31
    return USCC_ALPHABET[0 if check == 31 else check]


@pytest.mark.parametrize("value", KNOWN_USCC)
def test_uscc_known_codes(value: str) -> None:
    assert uscc_check_char(value[:17]) == value[17]
    assert reference_uscc_check(value[:17]) == value[17]
    assert is_valid_uscc(value)


def test_uscc_weights_are_powers_of_three() -> None:
    assert tuple(pow(3, i, 31) for i in range(17)) == USCC_WEIGHTS
    assert ids.USCC_WEIGHTS == USCC_WEIGHTS


def test_uscc_check_zero_case_and_invalid() -> None:
    # find a body whose check character is "0" (31 → 0) and compare with the reference
    body = "91510100MA6C1234"
    found = False
    for c in USCC_ALPHABET:
        if reference_uscc_check(body + c) == "0":
            assert uscc_check_char(body + c) == "0"
            found = True
    assert found
    good = KNOWN_USCC[0]
    assert not is_valid_uscc(good[:17] + ("7" if good[17] != "7" else "8"))
    assert not is_valid_uscc("814403001922038216")  # bad authority code
    assert not is_valid_uscc("91440300192203821")  # too short
    assert not is_valid_uscc("9144030019220382I6")  # I is not in the alphabet
    with pytest.raises(ValueError):
        uscc_check_char("91440300192203OIZ")


def test_ehc_id_format() -> None:
    assert is_valid_ehc_id("98FF9F2C05145CB9305E9D8A57E072BB51180CA49E5BE5E9D41BCE3A9A571928")
    assert not is_valid_ehc_id("98ff9f2c05145cb9305e9d8a57e072bb51180ca49e5be5e9d41bce3a9a571928")
    assert not is_valid_ehc_id("98FF9F2C05145CB9305E9D8A57E072BB51180CA49E5BE5E9D41BCE3A9A57192")
    assert not is_valid_ehc_id("98FF9F2C05145CB9305E9D8A57E072BB51180CA49E5BE5E9D41BCE3A9A571928:1")


def test_identifier_systems() -> None:
    s = identifier_systems("https://fhir.example.cn/")
    assert s.ehc_id == "https://fhir.example.cn/sid/ehc-id"
    assert s.ehc_mindex == "https://fhir.example.cn/sid/ehc-mindex"
    assert s.cin == "urn:oid:2.16.156.10011.1.3"
    assert s.rhc == "urn:oid:2.16.156.10011.1.19"
    assert s.health_record_no == "urn:oid:2.16.156.10011.1.2"
    assert s.id_doc("03") == "https://fhir.example.cn/sid/id-doc/03"
    assert s.org_outpatient_no("X") == "https://fhir.example.cn/sid/org/X/outpatient-no"
    assert s.org_inpatient_no("X") == "https://fhir.example.cn/sid/org/X/inpatient-no"
    assert s.org_mrn("X") == "https://fhir.example.cn/sid/org/X/mrn"
    assert s.fixmedins_code.endswith("/sid/nhsa/fixmedins-code")
    assert s.referral_no.endswith("/sid/referral-no")
    assert s.patient_card_systems == {
        s.ehc_id, s.ehc_mindex, s.cin, s.rhc, s.sscard, s.health_record_no
    }
    assert s.is_patient_card_system(s.id_doc("03"))
    assert not s.is_patient_card_system(s.id_doc_prefix)
    assert not s.is_patient_card_system(s.referral_no)
    with pytest.raises(AttributeError):
        s.ehc_id = "x"  # type: ignore[misc]


def test_extension_and_code_system_urls() -> None:
    b = DEFAULT_CANONICAL_BASE
    assert ids.ext_admin_division(b) == f"{b}/StructureDefinition/admin-division"
    assert ids.ext_ethnicity(b) == f"{b}/StructureDefinition/ethnicity"
    assert ids.ext_referral_direction(b) == f"{b}/StructureDefinition/referral-direction"
    assert ids.code_systems(b).cn_nip_vaccine == f"{b}/CodeSystem/cn-nip-vaccine"
    assert ids.CS_GB3304_ETHNICITY == "urn:oid:2.16.156.10011.2.3.3.3"
