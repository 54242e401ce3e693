"""What kfedge runs on: support matrix, KFP backend rules, KServe's runtime rules.

Nothing here talks to a cluster. The rules are read from the backends' source and written down
with their source, so that tests (``tests/test_backend_rules.py``, ``tests/test_manifests.py``),
``kfedge doctor`` and the README use one statement of them:

* :data:`SUPPORT_MATRIX`: the supported range of each system, with the reason for each floor.
* :data:`BACKEND_RULES` + :func:`backend_features`: which KFP backend features a compiled
  pipeline uses, and from which backend version each works.
* :func:`pipeline_problems`: structural checks the KFP driver applies at run time, done at
  compile time (every ``producerTask`` is a task of its DAG, placeholders resolve, ...).
* :func:`runtime_clashes`: KServe's servingruntime webhook rule (auto-select priorities).
* :func:`kserve_defaults`: KServe's default runtimes, Kubeflow's aggregated roles and the S3
  Secret keys / annotations (``kfedge/data/kserve_defaults.yaml``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "BACKEND_RULES",
    "KFP_MIN",
    "SUPPORT_MATRIX",
    "BackendRule",
    "Support",
    "backend_features",
    "kserve_defaults",
    "matrix_markdown",
    "parse_version",
    "pipeline_problems",
    "required_kfp",
    "runtime_clashes",
]

Version = tuple[int, ...]

#: The oldest KFP backend kfedge's compiled YAML is meant for (see :data:`SUPPORT_MATRIX`).
KFP_MIN: Version = (2, 14)


def parse_version(text: str) -> Version | None:
    """``"v2.14.3"`` / ``"2.16.0-rc.1"`` -> ``(2, 14, 3)`` / ``(2, 16, 0)``; None if no version.

    Args:
        text: A version string (a leading ``v`` and a pre-release suffix are allowed).

    Returns:
        The numeric parts, or None when ``text`` does not start with a version number.
    """
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text or ""))
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _fmt(v: Version) -> str:
    return ".".join(str(p) for p in v)


@dataclass(frozen=True)
class Support:
    """One row of the support matrix.

    Attributes:
        system: What (``Kubeflow Pipelines backend``, ``KServe``, ...).
        supported: The supported range, as people write it.
        minimum: The floor as a version tuple (None where no single version applies).
        tested: What kfedge is tested or checked against.
        reason: Why the floor is where it is (with sources).
    """

    system: str
    supported: str
    minimum: Version | None
    tested: str
    reason: str


SUPPORT_MATRIX: tuple[Support, ...] = (
    Support(
        "Kubeflow Pipelines backend",
        ">= 2.14",
        KFP_MIN,
        "compiled with kfp 2.17.3 / kfp-kubernetes 2.17.3; backend rules checked from the "
        "driver source of 2.14.0 - 2.17.0",
        "dsl.Collected fan-in from ParallelFor (PR #11725) and display names on producer tasks "
        "(#11938, #12061; issue #11173) work from 2.14; kfp-kubernetes JSON placement and "
        "secretNameParameter from 2.5 (#11770); accelerator channels from 2.4 (#11501). A "
        "ParallelFor `name=` needs 2.16 (#12808, issue #13239), so the pipelines set none.",
    ),
    Support(
        "KServe",
        "0.15 - 0.21",
        (0, 15),
        "0.21 (SDK 0.21.0, CRDs and webhook / credential code of the 0.21 line); KServe "
        "0.20.0's controller, webhooks and CRDs run by tests/test_cluster.py",
        "0.15 is what Kubeflow 1.11 ships; the API kfedge uses (v1beta1 InferenceService with "
        "modelFormat / runtime / protocolVersion, v1alpha1 ClusterServingRuntime, S3 Secret "
        "annotations, serving.kserve.io/storageSecretName) predates it: tag v0.15.0's CRDs "
        "accept kfedge's runtime and examples and its default runtimes claim the same formats "
        "(checked once); RawDeployment is still accepted in 0.21 (legacy name of Standard). "
        "spec.predictor.deploymentStrategy (Recreate for targets holding a device) is read by "
        "the raw Deployment reconciler from 0.15.",
    ),
    Support(
        "Kubernetes",
        ">= 1.27",
        (1, 27),
        "1.34.4: kube-apiserver (RBAC, Pod Security), controller manager, scheduler and "
        "kubectl apply -k of both overlays, run by tests/test_cluster.py",
        "kfedge uses only core v1, RBAC v1, node selectors, tolerations, extended resources and "
        "RuntimeClass (node.k8s.io/v1); the floor is that of `kubectl apply -k` with kustomize "
        "v5 (components, `labels`), bundled since kubectl 1.27. Your KFP / KServe releases may "
        "need newer (Kubeflow 1.11 targets 1.34).",
    ),
    Support(
        "Kubeflow platform (multi-user)",
        ">= 1.11 (KFP 2.15, KServe 0.15.2)",
        (1, 11),
        "manifests/overlays/kubeflow-profile",
        "Kubeflow 1.10.x ships KFP 2.4.1 / 2.5.0, below the KFP floor. Runs execute in the "
        "profile namespace as default-editor, whose kubeflow-edit role covers InferenceServices "
        "when KServe is installed with its Kubeflow overlay (aggregate-to-kubeflow-edit).",
    ),
    Support(
        "Standalone KFP + KServe",
        "KFP >= 2.14, KServe 0.15 - 0.21",
        KFP_MIN,
        "manifests/overlays/standalone",
        "Runs execute in `kubeflow` as pipeline-runner; the overlay adds a Role for "
        "InferenceServices (and get on the predictor's Deployment) there and the S3 Secret "
        "KServe reads.",
    ),
    Support(
        "arm64 edge nodes (evaluate, benchmark, serve)",
        "KFP >= 2.17, KServe >= 0.15.1",
        (2, 17),
        "read, not run: no arm64 node here (the arm64 userland tests run the runners and the "
        "server under qemu, not KFP's images)",
        "KFP's launcher and driver images are amd64-only before 2.17.0 (PR #12804, issue "
        "#12705): a step pinned to an arm64 node dies with `exec format error` on KFP 2.14 - "
        "2.16, Kubeflow 1.11 included. KServe's storage initializer image is amd64-only at "
        "0.15.0, multi-arch from 0.15.1.",
    ),
)


def matrix_markdown() -> str:
    """The support matrix as a Markdown table (the README's "Run on Kubeflow" section)."""
    lines = ["| system | supported | tested / checked | why |", "|---|---|---|---|"]
    for row in SUPPORT_MATRIX:
        lines.append(f"| {row.system} | {row.supported} | {row.tested} | {row.reason} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- pipeline walking
def _spec_docs(docs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, kubernetes platform spec) from the YAML documents of a compiled file."""
    docs = [d for d in (docs if isinstance(docs, list) else [docs]) if isinstance(d, dict)]
    spec = next((d for d in docs if "pipelineInfo" in d), {})
    platform = next((d for d in docs if "platforms" in d), {})
    return spec, ((platform.get("platforms") or {}).get("kubernetes") or {})


def _dags(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(component name or ``root``, component) for every DAG of the spec."""
    if "root" in spec:
        yield "root", spec["root"]
    for name, comp in (spec.get("components") or {}).items():
        if "dag" in comp:
            yield name, comp


def _task_inputs(task: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("parameters", "artifacts"):
        yield from ((task.get("inputs") or {}).get(kind) or {}).items()


def _producer(value: dict[str, Any]) -> str | None:
    for key in ("taskOutputParameter", "taskOutputArtifact"):
        if isinstance(value.get(key), dict):
            return value[key].get("producerTask")
    return None


def _is_loop(task: dict[str, Any]) -> bool:
    return "parameterIterator" in task or "artifactIterator" in task


def _executor_of(spec: dict[str, Any], task: dict[str, Any]) -> str | None:
    comp = (spec.get("components") or {}).get((task.get("componentRef") or {}).get("name"), {})
    return comp.get("executorLabel")


def _tasks_by_executor(spec: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Map executor label -> [(parent DAG name, task key, task)]."""
    out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for dag_name, dag in _dags(spec):
        for key, task in (dag["dag"].get("tasks") or {}).items():
            label = _executor_of(spec, task)
            if label:
                out.setdefault(label, []).append((dag_name, key, task))
    return out


# --------------------------------------------------------------------------- backend rules
@dataclass(frozen=True)
class BackendRule:
    """A KFP backend behaviour a compiled pipeline may rely on.

    Attributes:
        id: Short name.
        feature: What the pipeline uses.
        since: The first KFP backend release where it works.
        source: Where that is decided (PR / issue / file in kubeflow/pipelines).
        uses: Where a compiled pipeline uses it (a list of places; empty: not used).
    """

    id: str
    feature: str
    since: Version
    source: str
    uses: Callable[[dict[str, Any], dict[str, Any]], list[str]]


def _uses_loop_name(spec: dict[str, Any], _k8s: dict[str, Any]) -> list[str]:
    return [
        f"{dag_name}/{key}: taskInfo.name {task['taskInfo']['name']!r}"
        for dag_name, dag in _dags(spec)
        for key, task in (dag["dag"].get("tasks") or {}).items()
        if _is_loop(task) and (task.get("taskInfo") or {}).get("name", key) != key
    ]


def _uses_collected(spec: dict[str, Any], _k8s: dict[str, Any]) -> list[str]:
    out = []
    for dag_name, dag in _dags(spec):
        tasks = dag["dag"].get("tasks") or {}
        for key, task in tasks.items():
            for name, value in _task_inputs(task):
                prod = _producer(value)
                if prod in tasks and _is_loop(tasks[prod]):
                    out.append(f"{dag_name}/{key}.{name} <- {prod}")
    return out


def _uses_display_name_producer(spec: dict[str, Any], _k8s: dict[str, Any]) -> list[str]:
    out = set()
    for dag_name, dag in _dags(spec):
        tasks = dag["dag"].get("tasks") or {}
        for task in tasks.values():
            for _, value in _task_inputs(task):
                prod = _producer(value)
                if prod in tasks and not _is_loop(tasks[prod]):
                    shown = (tasks[prod].get("taskInfo") or {}).get("name", prod)
                    if shown != prod:
                        out.add(f"{dag_name}/{prod}: {shown!r}")
    return sorted(out)


def _platform_uses(k8s: dict[str, Any], pred: Callable[[dict[str, Any]], bool]) -> list[str]:
    execs = ((k8s.get("deploymentSpec") or {}).get("executors")) or {}
    return sorted(name for name, cfg in execs.items() if pred(cfg))


def _uses_json_placement(_spec: dict[str, Any], k8s: dict[str, Any]) -> list[str]:
    return _platform_uses(
        k8s,
        lambda c: (
            "nodeSelectorJson" in (c.get("nodeSelector") or {})
            or any("tolerationJson" in t for t in c.get("tolerations") or [])
        ),
    )


def _uses_secret_name_parameter(_spec: dict[str, Any], k8s: dict[str, Any]) -> list[str]:
    return _platform_uses(
        k8s,
        lambda c: any(
            "secretNameParameter" in s
            for s in (c.get("secretAsEnv") or []) + (c.get("secretAsVolume") or [])
        ),
    )


def _accelerators(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for label, ex in (((spec.get("deploymentSpec") or {}).get("executors")) or {}).items():
        acc = (((ex.get("container") or {}).get("resources")) or {}).get("accelerator")
        if acc:
            yield label, acc


def _uses_accelerator_channels(spec: dict[str, Any], _k8s: dict[str, Any]) -> list[str]:
    return sorted(
        label
        for label, acc in _accelerators(spec)
        if any(_PLACEHOLDER.search(str(acc.get(k, ""))) for k in ("resourceType", "resourceCount"))
    )


def _uses_nested_collected(spec: dict[str, Any], k8s: dict[str, Any]) -> list[str]:
    return [u for u in _uses_collected(spec, k8s) if not u.startswith("root/")]


def _uses_loop_parallelism(spec: dict[str, Any], _k8s: dict[str, Any]) -> list[str]:
    return [
        f"{dag_name}/{key}: parallelism {task['iteratorPolicy']['parallelismLimit']}"
        for dag_name, dag in _dags(spec)
        for key, task in (dag["dag"].get("tasks") or {}).items()
        if _is_loop(task) and (task.get("iteratorPolicy") or {}).get("parallelismLimit")
    ]


_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['(.+?)'\]\}\}")

BACKEND_RULES: tuple[BackendRule, ...] = (
    BackendRule(
        "accelerator-channels",
        "set_accelerator_type / set_accelerator_limit from task outputs (resourceType / "
        "resourceCount placeholders, resolved by the driver's initPodSpecPatch; a limit is added "
        "only when both resolve non-empty)",
        (2, 4),
        "kubeflow/pipelines PR #11501; backend/src/v2/driver/driver.go initPodSpecPatch",
        _uses_accelerator_channels,
    ),
    BackendRule(
        "json-placement",
        "kfp-kubernetes add_node_selector_json / add_toleration_json (nodeSelectorJson, "
        "tolerationJson); older drivers reject them as unknown fields",
        (2, 5),
        "kubeflow/pipelines PR #11770 and 'add backend support for toleration lists' (2.5.0); "
        "backend/src/v2/driver/k8s.go extendPodSpecPatch",
        _uses_json_placement,
    ),
    BackendRule(
        "secret-name-parameter",
        "kfp-kubernetes use_secret_as_env with the Secret name from a pipeline parameter "
        "(secretNameParameter)",
        (2, 5),
        "kubeflow/pipelines PR #11770; backend/src/v2/driver/k8s.go",
        _uses_secret_name_parameter,
    ),
    BackendRule(
        "collected",
        "dsl.Collected: a task consumes a ParallelFor's outputs as one list (fan-in)",
        (2, 14),
        "kubeflow/pipelines PR #11725 (backend/src/v2/driver/resolve.go CollectInputs)",
        _uses_collected,
    ),
    BackendRule(
        "nested-collected",
        "dsl.Collected of an inner loop's outputs inside an outer loop's iteration (fan-in one "
        "level at a time: the iteration's own tasks carry the _idx_N suffix the collector "
        "follows)",
        (2, 14),
        "kubeflow/pipelines backend/src/v2/driver/resolve.go CollectInputs (breadth-first "
        "through nested loop DAGs, 2.14.0) and backend/src/v2/metadata/client.go "
        "GetExecutionsInDAG / InferIndexedTaskName; upstream sample "
        "samples/v2/collected_artifacts.py (2.14.0); read, not run",
        _uses_nested_collected,
    ),
    BackendRule(
        "loop-parallelism",
        "dsl.ParallelFor(parallelism=N): iteratorPolicy.parallelismLimit, compiled to the Argo "
        "template's parallelism",
        (2, 4),
        "kubeflow/pipelines PR #10798 (backend/src/v2/compiler/argocompiler/dag.go)",
        _uses_loop_parallelism,
    ),
    BackendRule(
        "display-name-producer",
        "set_display_name on a task whose outputs other tasks consume (the driver resolves "
        "producers by task key, not display name)",
        (2, 14),
        "kubeflow/pipelines PRs #11938 and #12061 (issue #11173)",
        _uses_display_name_producer,
    ),
    BackendRule(
        "loop-name",
        "dsl.ParallelFor(name=...): taskInfo.name differs from the loop's task key; before "
        "2.16 the loop's DAG driver records the display name, so consumers of the loop "
        "('cannot find producer task for-loop-N') fail",
        (2, 16),
        "kubeflow/pipelines PR #12808 (backend/src/v2/compiler/argocompiler/dag.go passes the "
        "loop's task key); issue #13239; SDK fix PR #13707",
        _uses_loop_name,
    ),
)


def backend_features(docs: Any) -> dict[str, list[str]]:
    """Which :data:`BACKEND_RULES` a compiled pipeline uses, and where.

    Args:
        docs: The YAML documents of a compiled pipeline (``yaml.safe_load_all`` as a list), or
            the pipeline spec alone.

    Returns:
        ``{rule id: [places]}`` for the rules the pipeline uses.
    """
    spec, k8s = _spec_docs(docs)
    return {r.id: places for r in BACKEND_RULES if (places := r.uses(spec, k8s))}


def required_kfp(docs: Any) -> tuple[Version, list[str]]:
    """The oldest KFP backend a compiled pipeline can run on, and why.

    Args:
        docs: As for :func:`backend_features`.

    Returns:
        ``(version, reasons)``: the highest ``since`` of the rules used (at least
        :data:`KFP_MIN`), and one line per rule that sets it.
    """
    used = backend_features(docs)
    rules = [r for r in BACKEND_RULES if r.id in used]
    need = max([KFP_MIN, *(r.since for r in rules)])
    return need, [f"{r.id} needs >= {_fmt(r.since)} ({r.source})" for r in rules if r.since == need]


# --------------------------------------------------------------------------- structural checks
def _check_refs(
    where: str, ref: dict[str, Any], dag: dict[str, Any], problems: list[str], string: bool = False
) -> None:
    """A platform / placeholder reference must resolve in the DAG that runs the task."""
    inputs = ((dag.get("inputDefinitions") or {}).get("parameters")) or {}
    tasks = dag["dag"].get("tasks") or {}
    if "componentInputParameter" in ref:
        name = ref["componentInputParameter"]
        if name not in inputs:
            problems.append(f"{where}: componentInputParameter {name!r} is not an input of the DAG")
        elif string and inputs[name].get("parameterType") != "STRING":
            problems.append(f"{where}: {name!r} must be a STRING parameter")
    prod = _producer(ref)
    if prod is not None and prod not in tasks:
        problems.append(f"{where}: producerTask {prod!r} is not a task of the DAG")


#: Why a collected list must not enter a DAG (the ``collected-into-dag`` problem).
COLLECTED_INTO_DAG = (
    "a dsl.Collected artifact list enters a sub-DAG (loop or condition): the backend records "
    "one artifact per input name on the DAG's execution (backend/src/v2/metadata/client.go "
    "GetInputArtifactsByExecutionID, 2.14.0 - 2.17.0), so the steps inside see one item; "
    "bundle the list into one artifact first"
)


def _collected_into_dag(spec: dict[str, Any], dags: dict[str, Any]) -> list[str]:
    """Tasks that pass a loop's collected artifacts into a DAG (loop, condition, sub-DAG)."""
    comps = spec.get("components") or {}
    out = []
    for dag_name, dag in dags.items():
        tasks = dag["dag"].get("tasks") or {}
        for key, task in tasks.items():
            if "dag" not in comps.get((task.get("componentRef") or {}).get("name"), {}):
                continue
            for name, value in ((task.get("inputs") or {}).get("artifacts") or {}).items():
                prod = _producer(value)
                if prod in tasks and _is_loop(tasks[prod]):
                    out.append(f"{dag_name}/{key}.{name} <- {prod}: {COLLECTED_INTO_DAG}")
    return out


def pipeline_problems(docs: Any) -> list[str]:
    """Problems the KFP driver would hit at run time, found in the compiled YAML.

    Every backend version resolves inputs this way (``backend/src/v2/driver/resolve.go``):

    * a ``producerTask`` names a task key of the DAG the consumer is in;
    * no ``dsl.Collected`` artifact list enters a sub-DAG (:data:`COLLECTED_INTO_DAG`);
    * a ``componentInputParameter`` names an input of that DAG;
    * an accelerator placeholder ``{{$.inputs.parameters['X']}}`` names an input parameter of
      every task that runs the executor, and X is a STRING (the driver reads
      ``GetStringValue``; a number would resolve to "" and drop the limit);
    * kfp-kubernetes ``nodeSelectorJson`` / ``tolerationJson`` / ``secretNameParameter``
      resolve in the DAG of every task that runs the executor (the platform spec is per
      executor), node selectors from a STRUCT (``GetStructValue``), tolerations from a STRUCT
      or LIST.

    Args:
        docs: As for :func:`backend_features`.

    Returns:
        One line per problem (empty when the YAML resolves).
    """
    spec, k8s = _spec_docs(docs)
    problems: list[str] = []
    dags = dict(_dags(spec))
    problems += _collected_into_dag(spec, dags)
    outputs_of: dict[tuple[str, str], dict[str, Any]] = {}
    for dag_name, dag in dags.items():
        tasks = dag["dag"].get("tasks") or {}
        for key, task in tasks.items():
            for name, value in _task_inputs(task):
                _check_refs(f"{dag_name}/{key}.{name}", value, dag, problems)
            comp = (spec.get("components") or {}).get((task.get("componentRef") or {}).get("name"))
            for pname, decl in (
                ((comp or {}).get("outputDefinitions") or {}).get("parameters") or {}
            ).items():
                outputs_of[(dag_name, f"{key}.{pname}")] = decl
    by_exec = _tasks_by_executor(spec)

    def param_type(dag_name: str, ref: dict[str, Any]) -> str | None:
        dag = dags[dag_name]
        if "componentInputParameter" in ref:
            decl = ((dag.get("inputDefinitions") or {}).get("parameters") or {}).get(
                ref["componentInputParameter"]
            )
            return (decl or {}).get("parameterType")
        out = ref.get("taskOutputParameter") or {}
        decl = outputs_of.get(
            (dag_name, f"{out.get('producerTask')}.{out.get('outputParameterKey')}")
        )
        return (decl or {}).get("parameterType")

    for label, acc in _accelerators(spec):
        for field in ("resourceType", "resourceCount"):
            m = _PLACEHOLDER.search(str(acc.get(field, "")))
            if not m:
                continue
            for dag_name, key, task in by_exec.get(label, []):
                params = (task.get("inputs") or {}).get("parameters") or {}
                where = f"{label}.{field} in {dag_name}/{key}"
                if m.group(1) not in params:
                    problems.append(
                        f"{where}: {m.group(1)!r} is not an input parameter of the task"
                    )
                elif param_type(dag_name, params[m.group(1)]) != "STRING":
                    problems.append(f"{where}: {m.group(1)!r} must be a STRING parameter")
    execs = ((k8s.get("deploymentSpec") or {}).get("executors")) or {}
    for label, cfg in execs.items():
        refs: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
        sel = (cfg.get("nodeSelector") or {}).get("nodeSelectorJson")
        if sel:
            refs.append(("nodeSelectorJson", sel, ("STRUCT",)))
        for tol in cfg.get("tolerations") or []:
            if tol.get("tolerationJson"):
                refs.append(("tolerationJson", tol["tolerationJson"], ("STRUCT", "LIST")))
        for sec in (cfg.get("secretAsEnv") or []) + (cfg.get("secretAsVolume") or []):
            if sec.get("secretNameParameter"):
                refs.append(("secretNameParameter", sec["secretNameParameter"], ("STRING",)))
        for dag_name, key, _task in by_exec.get(label, []):
            for field, ref, types in refs:
                where = f"{label}.{field} in {dag_name}/{key}"
                before = len(problems)
                _check_refs(where, ref, dags[dag_name], problems)
                if len(problems) == before and "runtimeValue" not in ref:
                    got = param_type(dag_name, ref)
                    if got not in types:
                        problems.append(f"{where}: resolves to {got}, the driver needs {types}")
    return problems


# --------------------------------------------------------------------------- KServe
@functools.lru_cache(maxsize=1)
def kserve_defaults() -> dict[str, Any]:
    """The data of ``kfedge/data/kserve_defaults.yaml``.

    Returns:
        KServe's default runtimes, Kubeflow's aggregated InferenceService verbs, the S3 Secret
        keys and annotations KServe reads, KFP's object-store endpoints by release.
    """
    text = resources.files("kfedge").joinpath("data", "kserve_defaults.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _formats_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # areSupportedModelFormatsEqual: names case-insensitive, versions both absent or equal.
    return str(a.get("name", "")).lower() == str(b.get("name", "")).lower() and a.get(
        "version"
    ) == b.get("version")


def runtime_clashes(
    new: dict[str, Any], existing: Iterable[tuple[str, dict[str, Any]]], new_name: str = ""
) -> list[str]:
    """Why KServe's servingruntime webhook would deny a runtime, given the installed ones.

    The rule of ``pkg/webhook/admission/servingruntime/servingruntime_webhook.go``
    (``validateModelFormatPrioritySame``, ``validateServingRuntimePriority``): a disabled new
    runtime is always allowed; within the new runtime, auto-select formats of one name must
    share a priority; against each other runtime (skipped when disabled, of other
    ``multiModel``-ness, or of the same name) that shares a protocol version, no format may be
    auto-select in both, equal in name (case-insensitive) and version, with equal priorities.

    Args:
        new: The new runtime's ``spec``.
        existing: ``(name, spec)`` of the runtimes already installed (same scope).
        new_name: The new runtime's name (an update of itself is not a clash).

    Returns:
        One line per reason for denial (empty: admitted).
    """
    if new.get("disabled"):
        return []
    out = []
    auto_new = [f for f in new.get("supportedModelFormats") or [] if f.get("autoSelect")]
    seen: dict[str, Any] = {}
    for f in auto_new:
        prio = seen.setdefault(f["name"], f.get("priority"))
        if prio is not None and f.get("priority") is not None and prio != f.get("priority"):
            out.append(f"different priorities assigned for the model format {f['name']}")
    for name, spec in existing:
        if spec.get("disabled") or name == new_name:
            continue
        if bool(spec.get("multiModel")) != bool(new.get("multiModel")):
            continue
        if not set(spec.get("protocolVersions") or []) & set(new.get("protocolVersions") or []):
            continue
        for old in spec.get("supportedModelFormats") or []:
            for f in auto_new:
                if (
                    old.get("autoSelect")
                    and _formats_equal(old, f)
                    and old.get("priority") is not None
                    and old.get("priority") == f.get("priority")
                ):
                    out.append(
                        f"same priority {f.get('priority')} for model format {f['name']} "
                        f"version {f.get('version')} as runtime {name}"
                    )
    return out
