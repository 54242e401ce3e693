"""A fleet: one run for several edge targets (the ``edge-fleet`` pipeline and ``kfedge run``).

Each distinct technique runs once and its candidate is shared by every target that runs its
format; each target's candidates are evaluated and timed side by side on that target's node;
each target selects by its own goals and gets its own InferenceService.

The plan (:func:`plan_fleet`) is one JSON spec the pipeline's steps read:

* ``targets``: per target its placement, goals, FP32 reference format and the candidates
  (names) it measures;
* ``jobs``: per optimize job (the loop item) its technique, parameters, candidate name and the
  targets that use it. A technique whose parameters differ between targets (Edge TPU's integer
  IO, ONNX Runtime INT8's ISA) runs once per distinct parameter set, its candidate named
  ``<name>-for-<target>``;
* ``groups``: targets that may share a node are measured one after another (a group, its
  inner loop has ``parallelism=1``); groups run in parallel. Two targets may share a node when
  their node selectors do not contradict each other. Under kfp.local every target runs on this
  machine: one group, and every figure is marked as not measured on the target's hardware.

Candidates cross from the optimize loop to the per-target loops as ONE artifact (the
``bundle`` step): the KFP backend resolves one artifact per input name when an input enters a
DAG (``kfedge.support``, rule ``collected-into-dag``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from kfedge.errors import ConfigError, InvalidInputError, NotFoundError

#: The sentence every figure of a kfp.local fleet run carries (``machine["off_target"]``).
OFF_TARGET = (
    "kfp.local ran every target on this machine: latency and INT8 accuracy are this "
    "machine's, not the target hardware's"
)
#: The file naming the candidates inside a bundle (and what each item was).
INDEX = "index.json"
#: The spec's file name inside a fleet artifact directory (or the artifact file itself).
SPEC = "fleet.json"


def in_cluster() -> bool:
    """Whether this process runs in a Kubernetes pod (the service host variable is set)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def parse_targets(targets: list[str] | str) -> list[str]:
    """Target names from a list or a comma-separated string, in order, each once.

    Raises:
        ConfigError: No target, or a target named twice.
    """
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    names = [str(t).strip() for t in names if str(t).strip()]
    if not names:
        raise ConfigError("a fleet needs at least one target, e.g. cpu-arm64,intel-cpu-openvino")
    twice = sorted({t for t in names if names.count(t) > 1})
    if twice:
        raise ConfigError(f"targets must be distinct; named more than once: {twice}")
    return names


def placement_conflicts(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether no node can match both node selectors (a label with two different values)."""
    return any(k in b and b[k] != v for k, v in a.items())


def node_groups(selectors: dict[str, dict[str, str]], cluster: bool) -> list[list[str]]:
    """Targets that may land on one node, grouped (measured one after another).

    Args:
        selectors: Target name -> its node selector, in run order.
        cluster: False under kfp.local: every target runs on this machine, one group.

    Returns:
        The groups, each in run order; two targets share a group when a chain of targets
        whose selectors do not conflict links them.
    """
    names = list(selectors)
    if not cluster:
        return [names]
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if not placement_conflicts(selectors[a], selectors[b]):
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return list(groups.values())


def _plans(
    names: list[str], tgts: dict[str, Any], techniques: list[str] | str | None
) -> dict[str, list[str]]:
    """Each target's techniques (its FP32 reference first)."""
    from kfedge.provision import deployable, plan_techniques, refusal

    requested = techniques.split(",") if isinstance(techniques, str) else list(techniques or [])
    requested = [t.strip() for t in requested if t.strip()]
    if not requested or requested == ["auto"]:
        return {n: plan_techniques(None, tgts[n]) for n in names}
    from kfedge.techniques import TECHNIQUES

    unknown = [t for t in requested if t not in TECHNIQUES]
    if unknown:
        raise ConfigError(f"unknown technique(s) {unknown}; expected some of {sorted(TECHNIQUES)}")
    plans = {n: plan_techniques(None, tgts[n])[:1] for n in names}
    for t in dict.fromkeys(requested):
        fits = [n for n in names if deployable(t, tgts[n]) and t != plans[n][0]]
        if not fits:
            why = "; ".join(refusal(t, tgts[n]) or f"{t} is its FP32 reference" for n in names)
            raise ConfigError(f"no target of the fleet runs {t}: {why}")
        for n in fits:
            plans[n].append(t)
    return plans


def plan_fleet(
    targets: list[str] | str,
    techniques: list[str] | str | None = None,
    epochs: int | None = None,
    calibration_samples: int | None = None,
    goals: dict[str, Any] | str | None = None,
    cluster: bool | None = None,
) -> dict[str, Any]:
    """Plan a fleet run: per-target plans and goals, shared optimize jobs, node groups.

    Args:
        targets: Target names (or profile YAML paths), a list or comma-separated.
        techniques: Techniques to run (each goes to every target that runs what it writes), or
            None / ``auto``: each target's default plan.
        epochs: Fine-tune epochs (None: each technique's default).
        calibration_samples: INT8 calibration samples (None: default).
        goals: Fleet-wide goals with per-target overrides under ``targets``.
        cluster: Whether the run is in a cluster (default: :func:`in_cluster`).

    Returns:
        The spec (JSON-friendly): ``targets``, ``jobs``, ``groups`` (see the module).

    Raises:
        ConfigError: Unknown targets or techniques, a technique no target runs, goals for a
            target not in the fleet, or invalid goals for any target.
    """
    from kfedge.provision import check_goals, technique_params
    from kfedge.select import PER_TARGET, goals_dict
    from kfedge.targets import load_target
    from kfedge.techniques import candidate_name

    names = parse_targets(targets)
    tgts = {n: load_target(n) for n in names}
    profiles = [t.name for t in tgts.values()]
    if len(set(profiles)) != len(profiles):
        raise ConfigError(f"targets must be distinct profiles, got {names} ({profiles})")
    goals = goals_dict(goals)
    unknown = sorted(set(goals.get(PER_TARGET) or {}) - set(names))
    if unknown:
        raise ConfigError(f"goals name target(s) {unknown} that are not in the fleet {names}")
    plans = _plans(names, tgts, techniques)
    jobs: dict[str, dict[str, Any]] = {}
    for t in dict.fromkeys(x for n in names for x in plans[n][1:]):
        by_params: dict[str, list[str]] = {}
        for n in names:
            if t in plans[n][1:]:
                p = technique_params(t, tgts[n], epochs, calibration_samples)
                by_params.setdefault(json.dumps(p, sort_keys=True), []).append(n)
        for i, (pjson, users) in enumerate(by_params.items()):
            params = json.loads(pjson)
            name = candidate_name(t, params)
            if i:  # the same technique with other parameters: its own candidate
                name = f"{name}-for-{users[0]}"
                params["name"] = name
            key = t if not i else f"{t}@{users[0]}"
            jobs[key] = {"technique": t, "params": params, "name": name, "targets": users}
    cluster = in_cluster() if cluster is None else cluster
    groups = node_groups({n: tgts[n].k8s_node_selector() for n in names}, cluster)
    spec_targets = {}
    for n in names:
        tgt = tgts[n]
        acc = tgt.accelerator
        spec_targets[n] = {
            "arch": tgt.arch,
            "node_selector": tgt.k8s_node_selector(),
            "tolerations": tgt.k8s_tolerations(),
            "accelerator_type": acc.accelerator_type if acc else "",
            "accelerator_count": str(acc.count if acc else 0),
            "goals": check_goals(goals, tgt),
            "baseline": plans[n][0],
            "baseline_format": _output_format(plans[n][0]),
            "techniques": plans[n][1:],
            "candidates": [j["name"] for j in jobs.values() if n in j["targets"]],
            "service_name": service_name(n),
        }
    spec = {
        "targets": spec_targets,
        "jobs": jobs,
        "groups": {f"g{i}": g for i, g in enumerate(groups)},
        "in_cluster": cluster,
    }
    json.dumps(spec)  # JSON-friendly by contract
    return spec


def _output_format(technique: str) -> str:
    from kfedge.techniques import get_technique

    return get_technique(technique).output_format


def service_name(target: str) -> str:
    """A fleet target's InferenceService: the one its single-target runs use too.

    :func:`kfedge.isvc.default_isvc_name` (``kfedge-<target>``), so a fleet run updates what
    a run for that target alone deployed instead of adding a second one on the same node.
    """
    from kfedge.isvc import default_isvc_name
    from kfedge.targets import load_target

    return default_isvc_name(load_target(target).name)


# -- spec and bundle files ---------------------------------------------------------------
def _path(artifact: Any) -> Path:
    from kfedge.candidate import artifact_parts

    return artifact_parts(artifact)[0]


def read_spec(fleet: Any) -> dict[str, Any]:
    """The fleet spec from its artifact (a directory holding ``fleet.json``, or the file)."""
    p = _path(fleet)
    p = p / SPEC if p.is_dir() else p
    if not p.is_file():
        raise NotFoundError(f"no fleet spec at {p}: pass the plan_fleet step's fleet output")
    return json.loads(p.read_text())


def target_spec(spec: dict[str, Any], target: str) -> dict[str, Any]:
    """One target's part of the spec."""
    try:
        return spec["targets"][target]
    except KeyError:
        raise InvalidInputError(
            f"target {target!r} is not in the fleet {sorted(spec['targets'])}"
        ) from None


def job(spec: dict[str, Any], key: str) -> dict[str, Any]:
    """One optimize job of the spec."""
    try:
        return spec["jobs"][key]
    except KeyError:
        raise InvalidInputError(f"job {key!r} is not in the fleet {sorted(spec['jobs'])}") from None


def _item_name(path: Path, index: int) -> str:
    """What a bundled item is called: a candidate's (or failure's) name, a report's target."""
    from kfedge.candidate import META_FILE
    from kfedge.failure import FAILED_FILE

    if path.is_dir():
        for meta in (FAILED_FILE, META_FILE):
            if (path / meta).is_file():
                return str(json.loads((path / meta).read_text())["name"])
        return f"item-{index}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("target"), str):
        return data["target"]
    return f"item-{index}"


def bundle_into(items: list[Any], out: Any) -> dict[str, Any]:
    """Copy KFP artifacts (a ``dsl.Collected`` list) into ONE directory, each under its name.

    Candidates go under their candidate names, report JSON files under their target's name
    (``<target>.json``), other files as ``item-N``; ``index.json`` lists them.

    Raises:
        InvalidInputError: Two items with one name (a fleet's candidate names are distinct).
    """
    dest = _path(out)
    dest.mkdir(parents=True, exist_ok=True)
    index: dict[str, str] = {}
    for i, item in enumerate(items):
        src = _path(item)
        name = _item_name(src, i)
        if name in index:
            raise InvalidInputError(f"two bundled items are named {name!r}")
        if src.is_dir():
            shutil.copytree(src, dest / name)
            index[name] = name
        else:
            index[name] = f"{name}.json" if src.suffix in ("", ".json") else name + src.suffix
            shutil.copy2(src, dest / index[name])
    (dest / INDEX).write_text(json.dumps(index, indent=1))
    print(f"[kfedge] bundled {', '.join(index) or 'nothing'}")
    return index


def bundled(bundle: Any) -> dict[str, Path]:
    """A bundle's items by name."""
    root = _path(bundle)
    index = json.loads((root / INDEX).read_text())
    return {name: root / rel for name, rel in index.items()}


# -- component bodies ----------------------------------------------------------------------
def plan_fleet_from_files(
    model_uri: str,
    data_uri: str,
    targets: list[str] | str,
    baseline: Any,
    dataset: Any,
    fleet: Any,
    techniques: list[str] | str | None = None,
    epochs: int = 0,
    calibration_samples: int = 0,
    goals_json: str = "{}",
    s3_endpoint: str = "",
) -> list[str]:
    """The plan_fleet step: plan, import and check model and data once, write the spec.

    Every job's technique is checked against the model and data before any heavy work.

    Returns:
        The optimize jobs (the loop's items).
    """
    from kfedge.candidate import artifact_parts, model_path
    from kfedge.fsutil import write_json_atomic
    from kfedge.provision import check_fine_tuning, provision, use_s3_endpoint
    from kfedge.techniques import check as check_technique

    use_s3_endpoint(s3_endpoint)
    spec = plan_fleet(
        targets, techniques, epochs or None, calibration_samples or None, goals_json or "{}"
    )
    first = next(iter(spec["targets"]))
    (base_dir, base_meta), (data_dir, data_meta) = map(artifact_parts, (baseline, dataset))
    facts = provision(model_uri, data_uri, first, base_dir, data_dir, optimize=False)
    model = model_path(base_dir)
    check_fine_tuning(model, [j["technique"] for j in spec["jobs"].values()])
    for j in spec["jobs"].values():
        check_technique(j["technique"], model, data_dir, j["params"])
    spec["model"] = {k: facts[k] for k in ("model_uri", "model_format", "data_uri", "counts")}
    fleet_path, fleet_meta = artifact_parts(fleet)
    fleet_path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(fleet_path / SPEC, spec, sort_keys=False)
    if base_meta is not None:
        base_meta.update({"name": "baseline", "format": facts["model_format"]})
    if data_meta is not None:
        data_meta.update({"source": data_uri, **{f"n_{k}": v for k, v in facts["counts"].items()}})
    if fleet_meta is not None:
        fleet_meta.update({"targets": ",".join(spec["targets"]), "jobs": ",".join(spec["jobs"])})
    for n, t in spec["targets"].items():
        print(f"[kfedge] {n}: {', '.join(t['candidates']) or 'its FP32 reference only'}")
    return list(spec["jobs"])


class JobOutputs(NamedTuple):
    """The fleet_job step's outputs."""

    technique: str
    params_json: str


def job_from_file(fleet: Any, key: str) -> JobOutputs:
    """The fleet_job step: one job's technique and parameters (JSON)."""
    j = job(read_spec(fleet), key)
    print(f"[kfedge] {key}: {j['technique']} {j['params'] or 'defaults'} for {j['targets']}")
    return JobOutputs(j["technique"], json.dumps(j["params"]))


def groups_from_file(fleet: Any) -> list[str]:
    """The fleet_groups step: the node groups (the outer per-target loop's items)."""
    return list(read_spec(fleet)["groups"])


def members_from_file(fleet: Any, group: str) -> list[str]:
    """The group_targets step: a group's targets (measured one after another)."""
    groups = read_spec(fleet)["groups"]
    if group not in groups:
        raise InvalidInputError(f"group {group!r} is not in the fleet {sorted(groups)}")
    return list(groups[group])


class PlaceOutputs(NamedTuple):
    """The place_target step's outputs (placement for kfp-kubernetes, goals, names)."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    accelerator_type: str
    accelerator_count: str
    goals: str
    baseline_format: str
    service_name: str


def place_from_file(fleet: Any, target: str) -> PlaceOutputs:
    """The place_target step: one target's placement, goals and InferenceService name."""
    t = target_spec(read_spec(fleet), target)
    return PlaceOutputs(
        t["node_selector"],
        t["tolerations"],
        t["accelerator_type"],
        t["accelerator_count"],
        json.dumps(t["goals"]),
        t["baseline_format"],
        t["service_name"],
    )


def measure_from_files(
    bundle: Any,
    baseline: Any,
    dataset: Any,
    fleet: Any,
    target: str,
    evaluations: Any,
    timings: Any,
    latency_runs: int = 30,
    rounds: int = 5,
) -> dict[str, Any]:
    """The measure step on the target's node: evaluate its candidates, then time them.

    The target's candidates and its FP32 reference are timed side by side.

    Evaluations run one after another in this pod, then one side-by-side benchmark: nothing
    else this run controls uses the node meanwhile (its group's other targets wait).

    Args:
        bundle: The bundle of every candidate of the fleet.
        baseline: The target's FP32 reference candidate.
        dataset: The split dataset.
        fleet: The fleet spec.
        target: The target.
        evaluations: Output directory: ``<candidate>.json`` per candidate, ``baseline.json``.
        timings: Output file: the side-by-side timings.
        latency_runs: Timed runs of each evaluation's own latency (a rough figure).
        rounds: Interleaved rounds of the benchmark.

    Returns:
        ``names`` (the candidates measured, baseline first) and ``off_target`` ("" on a
        cluster).
    """
    from kfedge.evaluate import evaluate_from_files
    from kfedge.sidebyside import benchmark_from_files, save

    spec = read_spec(fleet)
    t = target_spec(spec, target)
    items = bundled(bundle)
    base_dir = _path(baseline)
    out = _path(evaluations)
    out.mkdir(parents=True, exist_ok=True)
    base_ev = evaluate_from_files(
        base_dir, _path(dataset), out / "baseline.json", latency_runs=latency_runs, target=target
    )
    names = [n for n in t["candidates"] if n != base_ev.name]
    missing = [n for n in names if n not in items]
    if missing:
        raise InvalidInputError(f"the bundle holds no candidate {missing} (has {sorted(items)})")
    for n in names:
        evaluate_from_files(
            items[n], _path(dataset), out / f"{n}.json", latency_runs=latency_runs, target=target
        )
    result = benchmark_from_files(
        [base_dir, *(items[n] for n in names)], _path(dataset), _path(timings),
        target=target, rounds=rounds,
    )  # fmt: skip
    off = "" if spec.get("in_cluster") else OFF_TARGET
    if off:
        result.machine["off_target"] = off
        save(result, _path(timings))
    (out / INDEX).write_text(json.dumps({"baseline": "baseline.json", "candidates": names}))
    return {"names": [base_ev.name, *names], "off_target": off}


def decide_from_files(
    measured: Any,
    bundle: Any,
    baseline: Any,
    timings: Any,
    goals_json: str,
    target: str,
    selection: Any,
    chosen: Any,
    report_json: Any,
    markdown: Any,
    html: Any,
) -> dict[str, Any]:
    """The decide step: select by the target's goals and write the target's report.

    Returns:
        ``deploy`` (bool), ``selection_metadata``, ``chosen_metadata``, and the report
        step's ``metrics`` / ``report_metadata`` (:func:`kfedge.report.report_from_files`).
    """
    from kfedge.report import report_from_files
    from kfedge.select import select_from_files

    root = _path(measured)
    index = json.loads((root / INDEX).read_text())
    items = bundled(bundle)
    files = [root / f"{n}.json" for n in index["candidates"]]
    sel = select_from_files(
        files,
        root / index["baseline"],
        goals_json,
        _path(selection),
        model_dirs=[items[n] for n in index["candidates"]],
        baseline_model_dir=_path(baseline),
        chosen_dir=_path(chosen),
        timings_path=_path(timings),
    )
    rep = report_from_files(
        files,
        root / index["baseline"],
        _path(selection),
        _path(report_json),
        _path(markdown),
        _path(html),
        title=f"kfedge report: {target}",
        target=target,
        timings_path=_path(timings),
    )
    return {**sel, **rep}
