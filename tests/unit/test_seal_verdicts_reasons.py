"""The sentence a clerk reads for each verdict, and the small mappings behind a seal's report line.

pyHanko's statuses are played by plain objects with the fields the mapping reads, so that each rule
of EN 319 102-1 §5.1.3 (and each boundary of it) is checked on exactly one input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.status import SignatureCoverageLevel

from inkless.errors import ValidationError
from inkless.seals.model import Change, Indication, PadesLevel, SubIndication
from inkless.seals.verify import (
    CHANGE_SENTENCES,
    _anchor,
    _certification,
    _change,
    _has_dss,
    _names,
    _pades_level,
    _sub,
    _verdict,
    _widget_location,
    one_line,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 18:00 JST


def status(**overrides: Any) -> Any:
    values: dict[str, Any] = {
        "intact": True,
        "valid": True,
        "trusted": True,
        "revoked": False,
        "coverage": None,
        "docmdp_ok": True,
        "trust_problem_indic": None,
        "revocation_details": None,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_each_failure_names_its_sub_indication_and_says_what_happened() -> None:
    cases: list[tuple[Any, Change | None, tuple[Indication, SubIndication, str]]] = [
        (
            status(intact=False, valid=False),
            Change.NONE,
            (
                Indication.FAILED,
                SubIndication.HASH_FAILURE,
                "The sealed bytes were altered after sealing: their digest no longer matches the signed one.",
            ),
        ),
        (
            status(valid=False),
            Change.NONE,
            (
                Indication.FAILED,
                SubIndication.SIG_CRYPTO_FAILURE,
                "The signature value does not verify with the signer's public key.",
            ),
        ),
        (
            status(coverage=SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START),
            Change.NONE,
            (
                Indication.FAILED,
                SubIndication.FORMAT_FAILURE,
                "The signature does not cover its whole revision of the file.",
            ),
        ),
        (
            status(),
            Change.OTHER,
            (
                Indication.FAILED,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                "The document was modified after this seal in a way a sealed document may not be ("
                + CHANGE_SENTENCES[Change.OTHER]
                + ")",
            ),
        ),
        (
            status(docmdp_ok=False),
            None,
            (
                Indication.FAILED,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                "The document was modified after this seal in a way a sealed document may not be "
                "(changes not permitted by the certification)",
            ),
        ),
        (
            status(docmdp_ok=False),
            Change.ANNOTATIONS,
            (
                Indication.FAILED,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                "The document was modified after this seal in a way a sealed document may not be ("
                + CHANGE_SENTENCES[Change.ANNOTATIONS]
                + ")",
            ),
        ),
        (
            status(revoked=True),
            Change.NONE,
            (Indication.FAILED, SubIndication.REVOKED, "The signer's certificate has been revoked."),
        ),
        (
            status(trusted=False),
            Change.NONE,
            (
                Indication.INDETERMINATE,
                SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                "The signer's certificate does not chain to a known inkless node CA (NO_CERTIFICATE_CHAIN_FOUND).",
            ),
        ),
        (
            status(trusted=False, trust_problem_indic=AdESIndeterminate.NOT_YET_VALID),
            Change.NONE,
            (
                Indication.INDETERMINATE,
                SubIndication.NOT_YET_VALID,
                "The signer's certificate does not chain to a known inkless node CA (NOT_YET_VALID).",
            ),
        ),
        (
            status(trusted=False, trust_problem_indic=AdESFailure.NOT_YET_VALID),
            Change.NONE,
            (
                Indication.FAILED,
                SubIndication.NOT_YET_VALID,
                "The signer's certificate does not chain to a known inkless node CA (NOT_YET_VALID).",
            ),
        ),
    ]
    for st, change, expected in cases:
        assert _verdict(st, change, None, None) == expected, expected
    assert _verdict(status(), Change.NONE, "its timestamp token does not verify", T0) == (
        Indication.INDETERMINATE,
        SubIndication.NO_POE,
        "The seal itself verifies, but its timestamp token does not verify.",
    )


def test_a_seal_covering_its_whole_revision_or_file_passes() -> None:
    for coverage in (SignatureCoverageLevel.ENTIRE_REVISION, SignatureCoverageLevel.ENTIRE_FILE, None):
        assert _verdict(status(coverage=coverage), Change.NONE, None, None) == (Indication.PASSED, None, "")


def test_a_status_without_pdf_fields_is_judged_on_the_rest() -> None:
    """pyHanko's plain SignatureStatus has no coverage, DocMDP or difference analysis: nothing fails for them."""
    plain: Any = SimpleNamespace(intact=True, valid=True, trusted=True, revoked=False, trust_problem_indic=None)
    assert _verdict(plain, None, None, None) == (Indication.PASSED, None, "")
    assert _change(plain) == (None, ())


def test_a_revocation_is_dated_and_a_timestamp_before_it_only_asks_for_review() -> None:
    revoked_at = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 09:30:00 JST
    details = SimpleNamespace(revocation_date=revoked_at, revocation_reason=SimpleNamespace(native="key_compromise"))
    text = "The signer's certificate has been revoked on 2026-12-01 09:30:00 JST (key_compromise)"
    st = status(revoked=True, revocation_details=details)
    assert _verdict(st, Change.NONE, None, None) == (Indication.FAILED, SubIndication.REVOKED, text + ".")
    assert _verdict(st, Change.NONE, None, T0) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
        text + "; the seal was timestamped before that (2026-11-30 18:00:00 JST), but the revocation must be reviewed.",
    )
    # Timestamped at the very second of the revocation, or after it: no proof it came first.
    for ts in (revoked_at, revoked_at + timedelta(seconds=1)):
        assert _verdict(st, Change.NONE, None, ts) == (Indication.FAILED, SubIndication.REVOKED, text + ".")
    # A status without a date: nothing to compare a timestamp with.
    undated = status(revoked=True, revocation_details=SimpleNamespace(revocation_date=None))
    assert _verdict(undated, Change.NONE, None, T0) == (
        Indication.FAILED,
        SubIndication.REVOKED,
        "The signer's certificate has been revoked.",
    )


def test_sub_indications_come_from_pyhankos_names_and_unknown_ones_are_generic() -> None:
    assert _sub(None) is None
    assert _sub(AdESIndeterminate.OUT_OF_BOUNDS_NO_POE) == SubIndication.OUT_OF_BOUNDS_NO_POE
    assert _sub(AdESFailure.FORMAT_FAILURE) == SubIndication.FORMAT_FAILURE
    assert _sub(AdESIndeterminate.POLICY_PROCESSING_ERROR) == SubIndication.GENERIC
    assert _sub(object()) == SubIndication.GENERIC  # no name at all


def test_what_changed_after_a_seal_comes_from_the_difference_analysis() -> None:
    assert _change(status(coverage=SignatureCoverageLevel.ENTIRE_FILE)) == (Change.NONE, ())
    assert _change(status(coverage=SignatureCoverageLevel.ENTIRE_REVISION, diff_result=None)) == (None, ())
    assert _change(status()) == (None, ())  # a document timestamp's status has no difference analysis
    suspicious = status(coverage=SignatureCoverageLevel.ENTIRE_REVISION, diff_result=SuspiciousModification("x"))
    assert _change(suspicious) == (Change.OTHER, ())
    levels = {
        ModificationLevel.NONE: Change.NONE,
        ModificationLevel.LTA_UPDATES: Change.LTA_UPDATES,
        ModificationLevel.FORM_FILLING: Change.FORM_FILLING,
        ModificationLevel.ANNOTATIONS: Change.ANNOTATIONS,
        ModificationLevel.OTHER: Change.OTHER,
    }
    for level, change in levels.items():
        diff = DiffResult(level, {"課長", "Approval", "係長"})
        got = _change(status(coverage=SignatureCoverageLevel.ENTIRE_REVISION, diff_result=diff))
        assert got == (change, ("Approval", "係長", "課長"))


def _sig(kind: str = "/Sig", revision: int = 1) -> Any:
    return SimpleNamespace(sig_object_type=kind, signed_revision=revision)


@pytest.mark.parametrize(
    ("sig", "subfilter", "has_ts", "has_dss", "doc_ts", "level"),
    [
        (_sig("/DocTimeStamp"), "/ETSI.RFC3161", False, True, [], PadesLevel.B_LTA),
        (_sig("/DocTimeStamp"), "/ETSI.RFC3161", False, False, [], PadesLevel.B_T),
        (_sig(), "/adbe.pkcs7.detached", True, True, [5], PadesLevel.NONE),
        (_sig(), "/ETSI.CAdES.detached", False, True, [5], PadesLevel.B_B),
        (_sig(), "/ETSI.CAdES.detached", True, False, [5], PadesLevel.B_T),
        (_sig(revision=1), "/ETSI.CAdES.detached", True, True, [2], PadesLevel.B_LTA),
        (_sig(revision=2), "/ETSI.CAdES.detached", True, True, [2], PadesLevel.B_LT),  # its own revision
        (_sig(revision=3), "/ETSI.CAdES.detached", True, True, [1, 2], PadesLevel.B_LT),
        (_sig(revision=1), "/ETSI.CAdES.detached", True, True, [], PadesLevel.B_LT),
    ],
)
def test_pades_levels(
    sig: Any, subfilter: str, has_ts: bool, has_dss: bool, doc_ts: list[int], level: PadesLevel
) -> None:
    assert _pades_level(sig, subfilter, has_ts, has_dss, doc_ts) == level


def test_a_library_error_becomes_one_line_with_its_type_unless_it_is_an_expected_one() -> None:
    assert one_line(PdfReadError("xref\n   table  broken")) == "xref table broken"
    assert one_line(ValueError("bad\tvalue")) == "bad value"
    assert one_line(ValidationError("the PDF is damaged")) == "the PDF is damaged"
    assert one_line(AttributeError("module has no\nattribute 'x'")) == "AttributeError: module has no attribute 'x'"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("  \n ")) == "RuntimeError"


def _text(value: str) -> asn1_x509.DirectoryString:
    return asn1_x509.DirectoryString(name="utf8_string", value=value)


def test_the_signer_names_are_read_from_the_certificate_subject_first_value_first() -> None:
    name = asn1_x509.Name.build(
        {"common_name": "田中 花子", "organizational_unit_name": "民事局", "organization_name": "法務省"}
    )
    assert _names(name) == {
        "common_name": "田中 花子",
        "organizational_unit_name": "民事局",
        "organization_name": "法務省",
    }
    twice = asn1_x509.Name(
        name="",
        value=asn1_x509.RDNSequence(
            [
                asn1_x509.RelativeDistinguishedName(
                    [asn1_x509.NameTypeAndValue({"type": "common_name", "value": _text("first")})]
                ),
                asn1_x509.RelativeDistinguishedName(
                    [asn1_x509.NameTypeAndValue({"type": "common_name", "value": _text("second")})]
                ),
            ]
        ),
    )
    assert _names(twice) == {"common_name": "first"}


def test_the_trust_anchor_is_named_only_for_a_trusted_path() -> None:
    named = asn1_x509.Name.build({"common_name": "moj CA", "organization_name": "法務省"})
    unnamed = asn1_x509.Name.build({"organization_name": "法務省"})

    def path(name: Any) -> Any:
        return SimpleNamespace(trust_anchor=SimpleNamespace(authority=SimpleNamespace(name=name)))

    assert _anchor(status(validation_path=path(named))) == "moj CA"
    assert _anchor(status(validation_path=path(unnamed))) == unnamed.human_friendly
    assert _anchor(status(validation_path=path(named), trusted=False)) is None
    assert _anchor(status(validation_path=None)) is None
    assert _anchor(status(validation_path=SimpleNamespace(trust_anchor=SimpleNamespace()))) is None


# --- where a seal sits, what it certifies, whether validation data is embedded ---------------------------


def _dict(**entries: Any) -> generic.DictionaryObject:
    return generic.DictionaryObject({generic.NameObject(f"/{k}"): v for k, v in entries.items()})  # type: ignore[no-untyped-call]


def _rect(*values: float) -> generic.ArrayObject:
    return generic.ArrayObject([generic.FloatObject(v) for v in values])  # type: ignore[no-untyped-call]


def _page(idnum: int) -> generic.IndirectObject:
    return generic.IndirectObject(idnum, 0, None)  # type: ignore[no-untyped-call]


def test_a_seal_is_located_on_its_page_by_its_widget_rectangle() -> None:
    pages = {11: 1, 12: 2}
    # Corners in any order give the same box; the page comes from the widget's /P.
    sig = SimpleNamespace(sig_field=_dict(Rect=_rect(434, 134, 400, 100), P=_page(12)))
    assert _widget_location(sig, pages) == (2, (400.0, 100.0, 434.0, 134.0))  # type: ignore[arg-type]
    # A field whose widget is its only kid.
    kid = _dict(Rect=_rect(10, 20, 40, 60), P=_page(11))
    assert _widget_location(SimpleNamespace(sig_field=_dict(Kids=generic.ArrayObject([kid]))), pages) == (  # type: ignore[arg-type]
        1,
        (10.0, 20.0, 40.0, 60.0),
    )
    # No page reference, or one to no known page: the box without a page.
    assert _widget_location(SimpleNamespace(sig_field=_dict(Rect=_rect(0, 0, 1, 1))), pages) == (  # type: ignore[arg-type]
        None,
        (0.0, 0.0, 1.0, 1.0),
    )
    assert _widget_location(SimpleNamespace(sig_field=_dict(Rect=_rect(0, 0, 5, 5), P=_page(99))), pages)[0] is None  # type: ignore[arg-type]
    # Invisible signatures (narrower or lower than one point) and fields without a rectangle have no place.
    for rect in (_rect(100, 500, 100.5, 520), _rect(100, 500, 150, 500.9), _rect(5, 5, 5, 5)):
        assert _widget_location(SimpleNamespace(sig_field=_dict(Rect=rect, P=_page(11))), pages) == (None, None)  # type: ignore[arg-type]
    # A box high on the page (y beyond x) is visible; a field with its own rectangle is its own widget.
    tall = _dict(Rect=_rect(50, 700, 150, 750), P=_page(11), Kids=generic.ArrayObject([kid]))
    assert _widget_location(SimpleNamespace(sig_field=tall), pages) == (1, (50.0, 700.0, 150.0, 750.0))  # type: ignore[arg-type]
    assert _widget_location(SimpleNamespace(sig_field=_dict(FT=generic.NameObject("/Sig"))), pages) == (None, None)  # type: ignore[arg-type]


def _reader(dss: Any) -> Any:
    return SimpleNamespace(root=_dict() if dss is None else _dict(DSS=dss))


def test_validation_data_counts_only_when_the_dss_holds_some() -> None:
    assert _has_dss(_reader(None)) is False
    assert _has_dss(_reader(_dict())) is False
    assert _has_dss(_reader(_dict(Certs=generic.ArrayObject()))) is False  # present but empty
    for key in ("Certs", "CRLs", "OCSPs"):
        assert _has_dss(_reader(_dict(**{key: generic.ArrayObject([generic.NumberObject(1)])}))) is True  # type: ignore[no-untyped-call]


def _signature(level: MDPPerm | None, kind: str = "/Sig", transform: str | None = None) -> Any:
    sig_object = (
        _dict()
        if transform is None
        else _dict(Reference=generic.ArrayObject([_dict(TransformMethod=generic.NameObject(transform))]))
    )
    return SimpleNamespace(docmdp_level=level, sig_object_type=kind, sig_object=sig_object)


def test_a_certifying_or_closing_seal_says_what_it_allows_afterwards() -> None:
    assert _certification(_signature(None)) is None
    assert _certification(_signature(MDPPerm.NO_CHANGES, kind="/DocTimeStamp")) is None
    assert _certification(_signature(MDPPerm.FILL_FORMS, transform="/DocMDP")) == (
        "certifies the document (allowed afterwards: form filling)"
    )
    assert _certification(_signature(MDPPerm.ANNOTATE, transform="/DocMDP")) == (
        "certifies the document (allowed afterwards: form filling and annotations)"
    )
    # A locking seal (FieldMDP reference, or none) is a closing seal, not a certification.
    assert _certification(_signature(MDPPerm.NO_CHANGES, transform="/FieldMDP")) == (
        "closing seal: locks the document (allowed afterwards: no changes)"
    )
    assert _certification(_signature(MDPPerm.NO_CHANGES)) == (
        "closing seal: locks the document (allowed afterwards: no changes)"
    )
