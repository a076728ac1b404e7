"""Unit tests of the seal domain: placements, ETSI verdict mapping, report JSON, TSA request checks."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from asn1crypto import algos, tsp
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.timestamps import HTTPTimeStamper

from inkless.errors import ValidationError
from inkless.seals.model import (
    Change,
    Indication,
    PadesLevel,
    SealPlacement,
    SealResult,
    SubIndication,
    VerificationReport,
)
from inkless.seals.tsa import TSA_POLICY_OID, _check_request, choose_timestamper
from inkless.seals.verify import _verdict

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def status(**overrides: Any) -> Any:
    values: dict[str, Any] = {
        "intact": True, "valid": True, "trusted": True, "revoked": False, "coverage": None, "docmdp_ok": True,
        "trust_problem_indic": None, "revocation_details": None,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_placement_needs_a_page_and_exactly_one_of_box_or_field() -> None:
    assert SealPlacement(page=2, box=(1, 2, 3, 4)).box == (1, 2, 3, 4)
    assert SealPlacement(page=1, field_name="課長").field_name == "課長"
    bad: list[dict[str, Any]] = [
        {"page": 0, "box": (1, 2, 3, 4)}, {"page": 1}, {"page": 1, "box": (1, 2, 3, 4), "field_name": "x"},
        {"page": 1, "box": (5, 2, 3, 4)}, {"page": 1, "box": (1, 4, 3, 4)},
    ]
    for kwargs in bad:
        with pytest.raises(ValidationError):
            SealPlacement(**kwargs)


def test_verdicts_follow_the_etsi_order() -> None:
    assert _verdict(status(), Change.NONE, None, T0) == (Indication.PASSED, None, "")
    cases = [
        (status(intact=False, valid=False, trusted=False), Change.NONE, Indication.FAILED, SubIndication.HASH_FAILURE),
        (status(valid=False), Change.NONE, Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE),
        (status(docmdp_ok=False), Change.OTHER, Indication.FAILED, SubIndication.SIG_CONSTRAINTS_FAILURE),
        (status(revoked=True, trusted=False), Change.NONE, Indication.FAILED, SubIndication.REVOKED),
        (status(trusted=False, trust_problem_indic=AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND), Change.NONE,
         Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND),
        (status(trusted=False, trust_problem_indic=AdESIndeterminate.EXPIRED), Change.NONE,
         Indication.INDETERMINATE, SubIndication.EXPIRED),
    ]
    for st, change, indication, sub in cases:
        got = _verdict(st, change, None, T0)
        assert got[:2] == (indication, sub), st
        assert got[2]  # always a reason when not PASSED
    problem = _verdict(status(), Change.LTA_UPDATES, "its timestamp token does not verify", T0)
    assert problem[:2] == (Indication.INDETERMINATE, SubIndication.NO_POE)


def test_a_change_beyond_form_filling_fails_even_when_docmdp_raises_no_objection() -> None:
    # pyHanko's docmdp_ok is None when it did not evaluate DocMDP (no certification) and True when the
    # certification allows the change: our own diff verdict (Change.OTHER) must still fail the seal.
    for docmdp_ok in (None, True):
        indication, sub, reason = _verdict(status(docmdp_ok=docmdp_ok), Change.OTHER, None, T0)
        assert (indication, sub) == (Indication.FAILED, SubIndication.SIG_CONSTRAINTS_FAILURE)
        assert "changed beyond form filling" in reason
    # Permitted changes after the seal do not fail it.
    for change in (Change.NONE, Change.LTA_UPDATES, Change.FORM_FILLING, Change.ANNOTATIONS):
        assert _verdict(status(docmdp_ok=None), change, None, T0)[0] == Indication.PASSED


def test_revoked_after_a_timestamp_is_indeterminate_with_the_date() -> None:
    later = datetime(2026, 12, 1, tzinfo=UTC)
    details = SimpleNamespace(revocation_date=later, revocation_reason=SimpleNamespace(native="key_compromise"))
    indication, sub, reason = _verdict(status(revoked=True, revocation_details=details), Change.NONE, None, T0)
    assert (indication, sub) == (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE)
    assert "2026-12-01" in reason and "key_compromise" in reason


def test_report_json_has_every_field_a_verifier_needs() -> None:
    seal = SealResult(index=1, field_name="f", kind="seal", indication=Indication.PASSED, subindication=None,
                      reason="", signer_name="田中 花子", signing_time=T0, pades_level=PadesLevel.B_LTA,
                      change=Change.LTA_UPDATES, imprint_png=b"png")
    report = VerificationReport("ab" * 32, (seal,), Indication.PASSED, None, "ok", T0)
    data = report.to_dict()
    assert data["indication"] == "PASSED" and data["validated_at"] == T0.isoformat()
    (s,) = data["seals"]
    assert s["signer_name"] == "田中 花子" and s["pades_level"] == "B-LTA" and s["change"] == "LTA_UPDATES"
    assert "imprint_png" not in s  # pictures are for the HTML page, not the JSON
    assert report.has_seals
    assert Indication.FAILED.severity > Indication.INDETERMINATE.severity > Indication.PASSED.severity


def _request(algorithm: str = "sha256", digest_len: int = 32, policy: str | None = None) -> tsp.TimeStampReq:
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
                            "hashed_message": b"\x01" * digest_len},
        "cert_req": True,
    }
    if policy:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields)


def test_tsa_request_checks() -> None:
    assert _check_request(_request()) is None
    assert _check_request(_request(policy=TSA_POLICY_OID)) is None
    assert _check_request(_request("sha1", 20)) is not None and _check_request(_request("sha1", 20))[0] == "bad_alg"
    assert _check_request(_request(digest_len=20))[0] == "bad_data_format"  # type: ignore[index]
    assert _check_request(_request(policy="1.2.3"))[0] == "unaccepted_policy"  # type: ignore[index]


def test_an_external_tsa_url_replaces_the_node_tsa() -> None:
    node_tsa: Any = object()
    assert choose_timestamper("", node_tsa) is node_tsa
    assert isinstance(choose_timestamper("https://tsa.example.jp/tsr", node_tsa), HTTPTimeStamper)
