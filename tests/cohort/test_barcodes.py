"""TCGA barcode parsing: patient, sample type code, vial, slide; errors for non-barcodes."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from histcode.cohort.barcodes import (
    SAMPLE_TYPE_CODES,
    BarcodeError,
    label_of_sample_type,
    parse_barcode,
    patient_of,
)


@pytest.mark.parametrize(
    ("text", "patient", "sample_id", "sample_type", "label", "slide"),
    [
        ("TCGA-51-4079-11A-01-TS1.8a22d88d-afcc-4a61-b267-780d5d738f36.svs", "TCGA-51-4079", "TCGA-51-4079-11A",
         "Solid Tissue Normal", 0, "TS1"),
        ("TCGA-63-A5MI-01A-01-TS1.04192D45-1EDB-4F5B-AC0D-2177317D73AE.svs", "TCGA-63-A5MI", "TCGA-63-A5MI-01A",
         "Primary Tumor", 1, "TS1"),
        ("TCGA-A7-A13E-11B-04-BSD.svs", "TCGA-A7-A13E", "TCGA-A7-A13E-11B", "Solid Tissue Normal", 0, "BSD"),
        ("TCGA-33-AASB-01B-01-TSA", "TCGA-33-AASB", "TCGA-33-AASB-01B", "Primary Tumor", 1, "TSA"),
        ("TCGA-3X-AAVA-01Z-00-DX1", "TCGA-3X-AAVA", "TCGA-3X-AAVA-01Z", "Primary Tumor", 1, "DX1"),
        ("/data/x/TCGA-AB-1234-06A-11R-A22K-07.tsv", "TCGA-AB-1234", "TCGA-AB-1234-06A", "Metastatic", None, None),
        ("tcga-ab-1234-02a", "TCGA-AB-1234", "TCGA-AB-1234-02A", "Recurrent Tumor", None, None),
    ],
)
def test_parse_barcode(text: str, patient: str, sample_id: str, sample_type: str, label: int | None,
                       slide: str | None) -> None:
    bc = parse_barcode(text)
    assert bc.patient_id == patient
    assert bc.sample_id == sample_id
    assert bc.sample_type == sample_type
    assert bc.label == label
    assert bc.slide == slide
    assert patient_of(text) == patient


def test_normal_vials_a_and_b_are_both_normal() -> None:
    a, b = parse_barcode("TCGA-XX-0001-11A-01-TS1"), parse_barcode("TCGA-XX-0001-11B-01-TS1")
    assert (a.label, b.label) == (0, 0)
    assert (a.vial, b.vial) == ("A", "B")


@pytest.mark.parametrize("text", ["slide_001.svs", "TCGA-51-407-01A", "TCGA-51-4079", "XTCGA-51-4079-01A"])
def test_no_barcode_is_a_clear_error(text: str) -> None:
    with pytest.raises(BarcodeError, match="no TCGA barcode"):
        parse_barcode(text)


def test_unknown_sample_code_is_named() -> None:
    with pytest.raises(BarcodeError, match="'77' is not a GDC sample type code"):
        parse_barcode("TCGA-51-4079-77A-01-TS1.svs")


def test_label_of_sample_type() -> None:
    assert label_of_sample_type("Primary Tumor") == 1
    assert label_of_sample_type(" Solid Tissue Normal ") == 0
    assert label_of_sample_type("Metastatic") is None


@given(
    tss=st.text(alphabet=string.ascii_uppercase + string.digits, min_size=2, max_size=2),
    participant=st.text(alphabet=string.ascii_uppercase + string.digits, min_size=4, max_size=4),
    code=st.sampled_from(sorted(SAMPLE_TYPE_CODES)),
    vial=st.sampled_from(string.ascii_uppercase),
    slide=st.sampled_from(["TS1", "BS2", "DX1", "TSA", "MS1"]),
    uuid=st.uuids(),
)
def test_parse_round_trip(tss: str, participant: str, code: str, vial: str, slide: str, uuid: object) -> None:
    name = f"TCGA-{tss}-{participant}-{code}{vial}-01-{slide}.{uuid}.svs"
    bc = parse_barcode(name)
    assert bc.sample_id == f"TCGA-{tss}-{participant}-{code}{vial}"
    assert bc.sample_type == SAMPLE_TYPE_CODES[code]
    assert bc.label == {"01": 1, "11": 0}.get(code)
    assert bc.slide == slide
