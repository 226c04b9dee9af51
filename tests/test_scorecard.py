"""The scorecard and the verdict table read the chapters' findings (made up here), say
"not measured" for what is missing, read verdicts per network, and take their anchor
column from facelin.anchors."""
import pytest

from facelin import anchors, findings, scorecard

CLAIM1, CLAIM2, CLAIM3 = (name for name, _ in scorecard.CLAIMS)


def _axis_findings(fraction=0.2):
    layer = {"departing_fraction": fraction, "departing_low": fraction - 0.05,
             "departing_high": fraction + 0.05, "units": 128, "flat": 0.8,
             "flat_null": 0.99}
    engineered = {"median_ratio": 0.1, "low": 0.05, "high": 0.15}
    return {"trained": {"pool": layer, "descriptor": layer}, "units_per_layer": 200,
            "layers": ["pool", "descriptor"], "faces": 2000, "dims": 50, "shape_dims": 25,
            "appearance_dims": 25,
            "engineered": {"descriptor, CNN unit": engineered,
                           "descriptor, matched null": engineered}}


def test_verdict_table_reads_verdicts_per_network(tmp_path):
    findings.save("claim1_linear_code", {
        "verdict": {"dlib-resnet": "holds", "mobileface": "partly holds",
                    "faceres": "does not hold"},
        "verdict_rule": "decoding EV above the untrained control"}, folder=tmp_path)
    findings.save("claim2_recognition", {"verdict": "partly"}, folder=tmp_path)
    table = scorecard.verdict_table(folder=tmp_path)
    assert list(table.columns) == ["dlib-resnet", "mobileface", "faceres"]
    assert list(table.index) == [CLAIM1, CLAIM2, CLAIM3]
    assert table.loc[CLAIM1].tolist() == ["holds", "partly holds", "does not hold"]
    # a plain string is the dlib-resnet verdict (files written before the networks)
    assert table.loc[CLAIM2].tolist() == ["partly holds", "not measured", "not measured"]
    assert set(table.loc[CLAIM3]) == {"not measured"}
    rules = scorecard.verdict_rules(folder=tmp_path)
    assert rules[CLAIM1].startswith("decoding EV") and rules[CLAIM2] is None


def test_saved_verdicts_are_read_per_network(tmp_path):
    findings.save("claim3_axis_model", {
        **_axis_findings(), "verdict": {"dlib-resnet": "does not hold",
                                        "mobileface": "partly holds"},
        "networks": {"mobileface": _axis_findings(0.5)}}, folder=tmp_path)
    table = scorecard.verdict_table(folder=tmp_path)
    assert table.loc[CLAIM3, "dlib-resnet"] == "does not hold"
    assert table.loc[CLAIM3, "mobileface"] == "partly holds"
    assert table.loc[CLAIM3, "faceres"] == "not measured"
    t = scorecard.table(folder=tmp_path).set_index("item")
    assert "0.50 [0.45, 0.55] of 128 units" in t.loc[CLAIM3, "mobileface"]


def test_unknown_verdict_words_are_not_verdicts():
    assert scorecard.saved_verdicts({"verdict": "maybe"}) == {}
    assert scorecard.saved_verdicts({"verdict": {"faceres": "sort of"}}) == {}
    assert scorecard.saved_verdicts(None) == {}


def test_table_has_a_column_per_network_and_anchors_from_the_anchor_table(tmp_path):
    findings.save("claim3_axis_model", {**_axis_findings(0.95),
                                        "verdict": {"dlib-resnet": "partly holds"}},
                  folder=tmp_path)
    route = {"rank1": 0.8, "rank1_diff": 0.1, "rank1_diff_low": 0.05,
             "rank1_diff_high": 0.15, "gallery": 150}
    condition = {"CNN": {**route, "rank1": 0.9}, "fitted params": route}
    findings.save("claim2_recognition", {
        "verdict": {"dlib-resnet": "holds"},
        "best_image_route": {"given": "fitted params", "detected": "fitted params"},
        "given": condition, "detected": condition}, folder=tmp_path)
    t = scorecard.table(folder=tmp_path).set_index("item")
    assert {"anchor", "source", "chapter", *scorecard.NETWORKS} <= set(t.columns)
    assert t.loc[CLAIM1, "dlib-resnet"] == "not measured"
    assert t.loc[CLAIM3, "dlib-resnet"].startswith("partly holds: ")
    assert "0.95" in t.loc[CLAIM3, "dlib-resnet"]
    assert t.loc[CLAIM3, "mobileface"] == "not measured"
    assert "2000 faces, 50-d (25 shape + 25 appearance)" in t.loc[
        "face space and stimuli", "dlib-resnet"]
    assert t.loc[CLAIM2, "dlib-resnet"].startswith(
        "holds: given landmarks: CNN rank-1 0.900, fitted params 0.800, CNN minus route "
        "0.100 [0.050, 0.150] (gallery 150)")
    reference = "agreement with the reference implementation"
    assert t.loc[reference, "anchor"] == anchors.get("dlib_lfw").value == "99.38%"
    assert t.loc["units recorded", "anchor"] == anchors.get("cells").value
    assert t.loc[reference, "dlib-resnet"] == "not measured"


def test_a_chapter_missing_a_key_is_not_measured(tmp_path):
    findings.save("claim3_axis_model", {"trained": {}}, folder=tmp_path)
    t = scorecard.table(folder=tmp_path).set_index("item")
    assert t.loc[CLAIM3, "dlib-resnet"].startswith("not measured")
    assert t.loc["units recorded", "dlib-resnet"] == "not measured"


def test_cnn_row_reads_the_port_agreement(tmp_path):
    findings.save("face_cnn", {"networks": {"faceres": {
        "max_relative_difference": 0.0012, "reference": "TensorFlow.js"}}},
        folder=tmp_path)
    t = scorecard.table(folder=tmp_path).set_index("item")
    cell = t.loc["agreement with the reference implementation", "faceres"]
    assert "against TensorFlow.js" in cell and "1.2e-03" in cell


def test_anchors_have_sources_and_uncertain_ones_claim_no_number():
    keys = [anchor.key for anchor in anchors.ANCHORS]
    assert len(keys) == len(set(keys))
    for anchor in anchors.ANCHORS:
        assert anchor.source and anchor.value
        if not anchor.certain:
            assert not any(ch.isdigit() for ch in anchor.value)
    assert {row.anchor for row in scorecard.ROWS} <= set(keys)
    with pytest.raises(KeyError, match="no anchor"):
        anchors.get("nonsense")


def test_findings_files_hold_measurements_not_anchor_values():
    """The book's findings hold no literature value typed in as a measurement."""
    import json
    from pathlib import Path
    folder = Path(__file__).resolve().parent.parent / "book" / "findings"
    for path in folder.glob("*.json"):
        text = json.dumps(json.loads(path.read_text()))
        assert "99.38" not in text and "Chang & Tsao" not in text, path.name
