"""The scorecard reads chapters' findings, says "not measured" for missing ones, and
applies its stated claim-3 rule."""
import pytest

from facelin import findings, scorecard


def _axis_findings(deficit, tuned, tuned_null=0.0):
    layer = {"beyond_null_deficit": deficit, "tuned_orth_real": tuned,
             "tuned_orth_null": tuned_null, "ev_axis": 0.5, "ev_reference": 0.55}
    return {"trained": {"pool": layer, "descriptor": layer}, "units_per_layer": 40,
            "layers": ["pool", "descriptor"], "faces": 2000, "dims": 50, "shape_dims": 25,
            "appearance_dims": 25, "engineered_change_axis": 5.0,
            "engineered_change_orthogonal": 0.5}


@pytest.mark.parametrize("deficit, tuned, expected", [
    (0.9, 0.1, "partly"), (0.9, 0.8, "holds"), (0.1, 0.8, "partly"), (0.1, 0.1, "does not hold")])
def test_claim3_rule(deficit, tuned, expected):
    assert scorecard.claim3_verdict(_axis_findings(deficit, tuned))[0] == expected


def test_claim3_rule_compares_with_the_null():
    # Orthogonal tuning as common in the nulls as in the units is no evidence.
    assert scorecard.claim3_verdict(_axis_findings(0.1, 0.8, tuned_null=0.7))[0] == "does not hold"
    with pytest.raises(KeyError, match="lack layers"):
        scorecard.claim3_verdict({"trained": {"pool": {}}})


def test_table_marks_missing_chapters_and_uses_saved_numbers(tmp_path):
    findings.save("claim3_axis_model", _axis_findings(0.95, 0.1), folder=tmp_path)
    findings.save("claim2_recognition", {"verdict": "holds", "verdict_reason": "close",
                                         "feature_sets": {"CNN": {"rank1": 0.9, "auc": 0.99}}},
                  folder=tmp_path)
    t = scorecard.table(folder=tmp_path).set_index("chapter")
    assert set(t.loc["claim1_linear_code", "measured"]) == {"not measured"}
    claim3 = t.loc["claim3_axis_model"].set_index("item")
    row = claim3.loc["Claim 3: CNN units not adequately modelled by the axis model"]
    assert row.verdict == "partly" and "0.95" in row.measured
    assert "2000 faces, 50-d (25 shape + 25 appearance)" in claim3.loc[
        "face space and stimuli", "measured"]
    assert t.loc["claim2_recognition", "verdict"] == "holds"
    assert "rank-1 0.90" in t.loc["claim2_recognition", "measured"]
    assert t.loc["face_cnn", "measured"] == "not measured"


def test_a_chapter_missing_a_key_is_not_measured(tmp_path):
    findings.save("claim3_axis_model", {"trained": {}}, folder=tmp_path)
    t = scorecard.table(folder=tmp_path).set_index("item")
    assert t.loc["Claim 3: CNN units not adequately modelled by the axis model",
                 "measured"].startswith("not measured")
    assert t.loc["units recorded", "measured"] == "not measured"


def test_cnn_row_reads_the_port_agreement(tmp_path):
    findings.save("face_cnn", {"descriptor_max_abs_diff": 0.0012}, folder=tmp_path)
    t = scorecard.table(folder=tmp_path).set_index("chapter")
    assert "1.2e-03" in t.loc["face_cnn", "measured"]
