"""The KFP backend rules kfedge's compiled YAML relies on, checked on pipelines/*.yaml.

Each rule comes from the backend's source (kubeflow/pipelines ``backend/src/v2/driver``,
``backend/src/v2/compiler/argocompiler``, at release tags 2.4.0 - 2.17.0) and is stated once in
``kfedge.support`` with its source (PR / file): which release a feature works from, and how the
driver resolves references. There is no KFP backend here, so these tests are the contract.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfedge.support import (
    BACKEND_RULES,
    KFP_MIN,
    SUPPORT_MATRIX,
    backend_features,
    matrix_markdown,
    parse_version,
    pipeline_problems,
    required_kfp,
)

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
RULES = {r.id: r for r in BACKEND_RULES}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_there_are_compiled_pipelines() -> None:
    assert {p.stem for p in PIPELINES} >= {"edge-optimize-deploy", "edge-optimize", "edge-evaluate"}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_reference_resolves_as_the_driver_resolves_it(path: Path) -> None:
    """producerTask keys, componentInputParameters, accelerator placeholders (STRING inputs),
    nodeSelectorJson (STRUCT), tolerationJson (STRUCT/LIST), secretNameParameter (STRING):
    backend/src/v2/driver resolve.go / k8s.go / driver.go initPodSpecPatch, every version."""
    assert pipeline_problems(_docs(path)) == []


_FLOOR_RULES = [r.id for r in BACKEND_RULES if r.id != "loop-name"]


@pytest.mark.parametrize("rule", _FLOOR_RULES)
@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_features_used_work_on_the_supported_floor(path: Path, rule: str) -> None:
    """A feature the pipeline uses must work on KFP_MIN (the README's floor)."""
    used = backend_features(_docs(path)).get(rule, [])
    if used:
        assert RULES[rule].since <= KFP_MIN, (
            f"{path.name} uses {rule} ({used}) which needs KFP >= {RULES[rule].since}, above the "
            f"supported floor {KFP_MIN}: {RULES[rule].source}"
        )


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_no_parallelfor_name_so_loops_resolve_before_2_16(path: Path) -> None:
    """ParallelFor's taskInfo.name must equal its task key (backends < 2.16: #12808, #13239)."""
    assert backend_features(_docs(path)).get("loop-name", []) == []
    need, why = required_kfp(_docs(path))
    assert need <= KFP_MIN, why


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_the_pipelines_really_use_the_features_the_floor_is_set_for(path: Path) -> None:
    """The floor's reasons are real: each pipeline fans in with dsl.Collected, names producer
    tasks, places by JSON and takes the Secret name and accelerator from parameters."""
    used = backend_features(_docs(path))
    for rule in ("collected", "display-name-producer", "json-placement", "accelerator-channels"):
        assert used.get(rule), f"{path.name} no longer uses {rule}: revisit the floor"
    assert used.get("secret-name-parameter")


def test_rules_cite_their_sources_and_the_floor_is_the_highest_needed() -> None:
    for r in BACKEND_RULES:
        assert re.search(r"(PR|PRs) #\d+|backend/src/v2/", r.source), r
        assert r.since >= (2, 4)
    kfp = next(s for s in SUPPORT_MATRIX if s.system == "Kubeflow Pipelines backend")
    assert kfp.minimum == KFP_MIN == max(r.since for r in BACKEND_RULES if r.id != "loop-name")
    assert all(s.reason and s.supported for s in SUPPORT_MATRIX)


# ------------------------------------------------------------- the checks catch what they claim
@pytest.fixture(scope="module")
def deploy_docs() -> list[dict[str, Any]]:
    return _docs(ROOT / "pipelines" / "edge-optimize-deploy.yaml")


def test_checker_catches_a_producer_that_is_not_a_task_key(deploy_docs: list) -> None:
    docs = copy.deepcopy(deploy_docs)
    sel = docs[0]["root"]["dag"]["tasks"]["select"]
    sel["inputs"]["artifacts"]["evaluations"]["taskOutputArtifact"]["producerTask"] = "technique"
    assert any("producerTask 'technique'" in p for p in pipeline_problems(docs))


def test_checker_catches_a_numeric_accelerator_count(deploy_docs: list) -> None:
    docs = copy.deepcopy(deploy_docs)
    out = docs[0]["components"]["comp-provision"]["outputDefinitions"]["parameters"]
    out["accelerator_count"]["parameterType"] = "NUMBER_INTEGER"
    probs = pipeline_problems(docs)
    assert any("accelerator_count" in p and "STRING" in p for p in probs), probs


def test_checker_catches_placement_from_the_wrong_type_or_dag(deploy_docs: list) -> None:
    docs = copy.deepcopy(deploy_docs)
    out = docs[0]["components"]["comp-provision"]["outputDefinitions"]["parameters"]
    out["node_selector"]["parameterType"] = "LIST"
    assert any("nodeSelectorJson" in p for p in pipeline_problems(docs))
    docs = copy.deepcopy(deploy_docs)
    execs = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # deploy has no Secret of its own (KServe fetches the model); give it one whose name is a
    # root input, though deploy runs in condition-2, where that input does not exist
    execs.setdefault("exec-deploy", {})["secretAsEnv"] = [
        {
            "keyToEnv": [{"envVar": "AWS_ACCESS_KEY_ID", "secretKey": "accesskey"}],
            "secretNameParameter": {"componentInputParameter": "s3_secret"},
        }
    ]
    assert any("secretNameParameter" in p for p in pipeline_problems(docs))


def test_loop_name_detection_and_required_version(deploy_docs: list) -> None:
    docs = copy.deepcopy(deploy_docs)
    docs[0]["root"]["dag"]["tasks"]["for-loop-1"]["taskInfo"]["name"] = "for-loop-1"
    assert "loop-name" not in backend_features(docs)
    assert required_kfp(docs)[0] == KFP_MIN
    docs[0]["root"]["dag"]["tasks"]["for-loop-1"]["taskInfo"]["name"] = "My Loop"
    assert required_kfp(docs)[0] == (2, 16)


def test_parse_version() -> None:
    assert parse_version("2.14.3") == (2, 14, 3)
    assert parse_version("v2.16.0-rc.1") == (2, 16, 0)
    assert parse_version("unknown") is None
    assert parse_version("") is None


def test_readme_shows_the_support_matrix() -> None:
    readme = (ROOT / "README.md").read_text()
    assert matrix_markdown() in readme, (
        "README 'Run on Kubeflow' must contain kfedge.support.matrix_markdown() verbatim"
    )
