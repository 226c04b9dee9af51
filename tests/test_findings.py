import math

import numpy as np
import pytest

from facelin import findings


def test_round_trip_rounds_and_converts(tmp_path):
    findings.save("claim_x", {"ev": np.float64(0.123456), "n": 3, "nan": math.nan,
                              "per_layer": {"a": [0.5, np.float32(0.25)]}}, folder=tmp_path)
    out = findings.load("claim_x", folder=tmp_path)
    assert out == {"ev": 0.1235, "n": 3, "nan": None, "per_layer": {"a": [0.5, 0.25]}}
    findings.save("claim_x", {"small": 3.14159e-7}, folder=tmp_path)
    assert findings.load("claim_x", folder=tmp_path) == {"small": 3.142e-07}
    assert [p.name for p in tmp_path.iterdir()] == ["claim_x.json"]  # no temporary left


def test_missing_and_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="execute book/claim_y.ipynb"):
        findings.load("claim_y", folder=tmp_path)
    with pytest.raises(ValueError, match="simple name"):
        findings.save("../x", {}, folder=tmp_path)


def test_the_folder_comes_from_the_environment_or_the_current_directory(
        tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIN_FINDINGS", str(tmp_path / "set"))
    path = findings.save("claim_z", {"n": 1})
    assert path == tmp_path / "set" / "claim_z.json"
    assert findings.load("claim_z") == {"n": 1}
    monkeypatch.delenv("FACELIN_FINDINGS")
    monkeypatch.chdir(tmp_path)
    assert findings.save("claim_z", {"n": 2}) == tmp_path / "findings" / "claim_z.json"
    assert findings.load("claim_z") == {"n": 2}
