"""KServe manifests: valid against the InferenceService fields KServe 0.14 documents (a schema in
data/; the kserve SDK itself is not installed here), sized from the profile, and no autoscaling
target from a capacity that was only a lower bound."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlc.deploy import PackageOptions, package
from mlc.errors import UsageError
from mlc.registry import Registry

from .conftest import PROFILE_RUN, forest, profile_record

SCHEMA = json.loads((Path(__file__).parent / "data" / "inferenceservice-v1beta1.schema.json").read_text())


def _manifest(dest: Path) -> dict:
    doc = yaml.safe_load((dest / "inferenceservice.yaml").read_text())
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_a_profiled_version_gets_its_measured_resources_and_an_rps_target(registry, tmp_path):
    doc = _manifest(package("iris:3", "kserve", tmp_path / "k", target="cpu-8", registry=registry).dest)
    predictor = doc["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "2500m",
                                                                                      "memory": "154Mi"}
    assert predictor["scaleMetric"] == "rps" and predictor["scaleTarget"] == 81862  # usable_rps of the run
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert doc["metadata"]["annotations"]["mlc.dev/ref"] == "iris:3"


def test_without_a_profile_replicas_are_fixed_and_the_readme_says_why(registry, tmp_path):
    doc = _manifest(package("iris:1", "kserve", tmp_path / "k", registry=registry).dest)
    predictor = doc["spec"]["predictor"]
    assert "scaleTarget" not in predictor and predictor["minReplicas"] == predictor["maxReplicas"] == 1
    assert "no profile" in doc["metadata"]["annotations"]["mlc.dev/scaling"]
    assert "Not measured" in (tmp_path / "k" / "README.md").read_text()


def test_a_lower_bound_capacity_sets_no_autoscaling_target(tmp_path, monkeypatch):
    report = json.loads(PROFILE_RUN.read_text())
    measured = report["body"]["recommendation"]["measured_config"]
    for config in report["body"]["configs"]:
        if config["config"] == measured:  # the generator, not the server, limited every point
            for point in config["points"]:
                point["loadgen_limited"] = True
    reg = Registry(tmp_path / "home")
    data, _, _ = forest()
    from mlc.signature import tabular

    mv = reg.register("iris", data, format="onnx", framework="sklearn", signature=tabular(4, task="classification"),
                      metrics={"profile": profile_record(report, "profile.json")})
    reg.attach_report(mv, "profile.json", json.dumps(report))
    doc = _manifest(package("iris:1", "kserve", tmp_path / "k", target="cpu-8", registry=reg).dest)
    assert "scaleTarget" not in doc["spec"]["predictor"]
    assert "lower bound" in doc["metadata"]["annotations"]["mlc.dev/scaling"]
    readme = (tmp_path / "k" / "README.md").read_text()
    assert "at least 109150 req/s" in readme and "only a lower bound" in readme


def test_the_triton_runtime_serves_the_exported_repository(registry, tmp_path):
    options = PackageOptions(runtime="triton", storage_uri="s3://models/iris")
    doc = _manifest(package("iris:3", "kserve", tmp_path / "k", target="cpu-8", options=options,
                            registry=registry).dest)
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["storageUri"] == "s3://models/iris"
    with pytest.raises(UsageError, match="--storage-uri"):
        package("iris:3", "kserve", tmp_path / "k2", options=PackageOptions(runtime="triton"), registry=registry)


def test_the_schema_would_catch_a_misspelt_field():
    bad = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "x"},
           "spec": {"predictor": {"minReplica": 1, "containers": [{"name": "c", "image": "i"}]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
