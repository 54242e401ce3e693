"""The kfedge pipelines: edge-optimize-deploy, edge-optimize and edge-evaluate.

Placement is done with kfp-kubernetes from the provision step's outputs, so ONE compiled YAML
serves every target: the target is a run-time parameter in the KFP UI. Evaluate and the
side-by-side benchmark run on the target node (node selector, tolerations, accelerator), in the
slim multi-arch serving image (no TensorFlow); the optimization steps, select, report and
deploy (which only talks to the API server) run on ordinary nodes. S3 credentials come from
KFP's own Secret (``mlpipeline-minio-artifact``).

Latency that decides: once every candidate exists and every evaluation is done, ONE benchmark
task times all candidates and the FP32 reference side by side on the target node (interleaved
rounds, fresh TF-free processes), so nothing else the pipeline controls runs there meanwhile;
its pod asks for whole CPUs with limits equal to requests. Each evaluate task keeps accuracy,
size and a rough latency of its own (30 runs); select and report get the benchmark's timings.

No step retries at the pod level: KFP retries cannot tell a transient fault from a
deterministic one, and the library already retries S3 and Kubernetes API calls with backoff.
"""

from typing import Any

from kfp import dsl, kubernetes

from kfedge.components.benchmark import benchmark
from kfedge.components.deploy import deploy
from kfedge.components.evaluate import evaluate
from kfedge.components.export_fp32 import export_fp32
from kfedge.components.import_model import import_model
from kfedge.components.optimize import optimize
from kfedge.components.provision import provision
from kfedge.components.report import report
from kfedge.components.select import select
from kfedge.components.technique_params import technique_params
from kfedge.provision import DEFAULT_TECHNIQUES

#: Optimized techniques of the default plan (the FP32 reference is always exported too).
DEFAULT_PLAN = [t for t in DEFAULT_TECHNIQUES if not t.startswith("fp32-")]
DEFAULT_GOALS = '{"max_accuracy_drop": 0.015, "objective": "latency"}'
#: Timed runs of each evaluate step's own latency: a rough figure, the benchmark decides.
EVAL_LATENCY_RUNS = 30
#: The benchmark pod's whole CPUs and memory, limits equal to requests.
BENCHMARK_CPUS = "2"
BENCHMARK_MEMORY = "2Gi"
#: KFP's artifact-store Secret (SeaweedFS / MinIO): keys accesskey / secretkey.
S3_SECRET = "mlpipeline-minio-artifact"
S3_SECRET_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
#: Pipeline parameters passed to the provision step as they are.
_PROVISION_PARAMS = (
    "model_uri",
    "data_uri",
    "target",
    "techniques",
    "epochs",
    "calibration_samples",
    "goals_json",
    "s3_endpoint",
)


def _s3(task: dsl.PipelineTask, secret: Any = S3_SECRET) -> None:
    kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=S3_SECRET_KEYS)


def _evaluate(model: Any, prov: dsl.PipelineTask, target: Any, latency_runs: Any):
    """An evaluate task placed on the target node with the target's accelerator.

    Inside a ParallelFor, only artifacts and pipeline parameters are passed as inputs:
    kfp.local (2.17.3) replaces every task-output *parameter* entering a loop with the loop
    item. The accelerator channels reach the loop's sub-DAG through technique_params.
    """
    ev = evaluate(
        model=model, dataset=prov.outputs["dataset"], latency_runs=latency_runs, target=target
    )
    ev.set_cpu_request("1").set_memory_request("1Gi")
    ev.set_caching_options(False)  # its figures belong to this run's node
    return _on_target(ev, prov)


def _benchmark(
    baseline: Any,
    models: Any,
    prov: dsl.PipelineTask,
    target: Any,
    rounds: Any,
    evaluations: list[dsl.PipelineTask],
) -> dsl.PipelineTask:
    """The one side-by-side benchmark task on the target node, after every evaluation.

    Args:
        baseline: The FP32 reference (outside the loop).
        models: The loop's candidate output (collected here).
        prov: The provision task (dataset, placement).
        target: The target parameter (runtime options, threads).
        rounds: Interleaved rounds.
        evaluations: The evaluate tasks it must follow (the loop's and the reference's), so
            that no evaluation shares the node with it.
    """
    bench = benchmark(
        baseline=baseline,
        models=dsl.Collected(models),
        dataset=prov.outputs["dataset"],
        target=target,
        rounds=rounds,
    ).set_display_name("benchmark side by side on target")
    for ev in evaluations:
        bench.after(ev)
    # whole CPUs, limits = requests: the CPU quota is exactly what the threads are sized to
    _resources(bench, BENCHMARK_CPUS, BENCHMARK_MEMORY, BENCHMARK_CPUS, BENCHMARK_MEMORY)
    bench.set_caching_options(False)  # latency belongs to this run's node
    return _on_target(bench, prov)


def _on_target(task: dsl.PipelineTask, prov: dsl.PipelineTask) -> dsl.PipelineTask:
    """Place a task on the target node chosen at run time, with the target's accelerator.

    Only evaluate and benchmark are placed so (their figures are the node's and its
    accelerator's); they run in the serving image, built for every architecture a target can
    have. Deploy is not: its pod only talks to the API server.

    Args:
        task: The task to place.
        prov: The provision task whose outputs hold the target's placement.
    """
    kubernetes.add_node_selector_json(task, node_selector_json=prov.outputs["node_selector"])
    kubernetes.add_toleration_json(task, toleration_json=prov.outputs["tolerations"])
    task.set_accelerator_type(prov.outputs["accelerator_type"])
    task.set_accelerator_limit(prov.outputs["accelerator_count"])
    return task


def _edge_ready(model: Any, target: Any) -> dsl.PipelineTask:
    """A model as the TF-free edge runtime runs it (an export step on an ordinary node).

    A .tflite / .onnx / OpenVINO model is kept as it is; a Keras model or SavedModel is exported
    to the target's FP32 format. The target is a pipeline parameter, so this works inside a
    ParallelFor under kfp.local.
    """
    task = export_fp32(model=model, keep_deployable=True, target=target)
    _resources(task, "1", "2Gi", "2", "4Gi")
    return task


def _resources(task: dsl.PipelineTask, cpu: str, memory: str, cpu_limit: str, mem_limit: str):
    return (
        task.set_cpu_request(cpu)
        .set_memory_request(memory)
        .set_cpu_limit(cpu_limit)
        .set_memory_limit(mem_limit)
    )


def _provision(s3_secret: Any, **inputs: Any) -> dsl.PipelineTask:
    """The provision task: S3 credentials from the Secret, resources, no caching."""
    prov = provision(**inputs)
    _s3(prov, s3_secret)
    _resources(prov, "1", "2Gi", "4", "8Gi")
    prov.set_caching_options(False)  # the content behind a source URI may change
    return prov


def _measure_select_report(
    ev: dsl.PipelineTask,
    model: Any,
    base_eval: dsl.PipelineTask,
    baseline_model: Any,
    prov: dsl.PipelineTask,
    target: Any,
    rounds: Any,
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """Benchmark side by side, select by goals, and report against the baseline.

    Args:
        ev: The evaluate task inside the ParallelFor.
        model: The model output inside the ParallelFor that ``ev`` evaluated.
        base_eval: The evaluate task of the baseline every candidate is compared with.
        baseline_model: The baseline model (deployed when it is the best that meets the goals).
        prov: The provision task (its goals fit the target).
        target: The target parameter.
        rounds: Interleaved rounds of the benchmark.

    Returns:
        The select and report tasks.
    """
    bench = _benchmark(baseline_model, model, prov, target, rounds, [ev, base_eval])
    timings = bench.outputs["timings"]
    sel = select(
        evaluations=dsl.Collected(ev.outputs["evaluation"]),
        models=dsl.Collected(model),
        baseline_evaluation=base_eval.outputs["evaluation"],
        baseline_model=baseline_model,
        timings=timings,
        goals_json=prov.outputs["goals"],
    ).set_display_name("select by goals")
    rep = report(
        evaluations=dsl.Collected(ev.outputs["evaluation"]),
        baseline_evaluation=base_eval.outputs["evaluation"],
        selection=sel.outputs["selection"],
        timings=timings,
        target=target,
    ).set_display_name("report: original vs optimized")
    for t in (sel, rep):
        t.set_caching_options(False)  # they follow this run's latency measurements
    return sel, rep


def _optimize_and_evaluate(inputs: dict[str, Any]):
    """Provision, the FP32 reference, the technique loop, select and report.

    Args:
        inputs: The calling pipeline's parameters by name (its ``locals()`` on entry); the
            ones these steps take are read, the others (deploy's) are left alone.

    Returns:
        The provision, select and report tasks.
    """
    target, runs = inputs["target"], inputs["latency_runs"]
    rounds = inputs["benchmark_rounds"]
    prov = _provision(
        inputs["s3_secret"], **{k: inputs[k] for k in _PROVISION_PARAMS}
    ).set_display_name("provision: import, check, plan")

    base = export_fp32(
        model=prov.outputs["baseline"], model_format=prov.outputs["baseline_format"]
    ).set_display_name("export FP32 reference")
    _resources(base, "1", "2Gi", "2", "4Gi")
    base_eval = _evaluate(base.outputs["candidate"], prov, target, runs)
    base_eval.set_display_name("evaluate FP32 reference on target")

    with dsl.ParallelFor(inputs["techniques"]) as technique:
        params = technique_params(
            runtime=prov.outputs["runtime"],
            technique=technique,
            accelerator_type=prov.outputs["accelerator_type"],
            accelerator_count=prov.outputs["accelerator_count"],
        )
        params.set_display_name("technique parameters")
        opt = optimize(
            technique=technique,
            model=prov.outputs["baseline"],
            dataset=prov.outputs["dataset"],
            params_json=params.output,
        ).set_display_name("optimize")
        _resources(opt, "2", "4Gi", "4", "8Gi")
        ev = _evaluate(opt.outputs["candidate"], prov, target, runs)
        ev.set_display_name("evaluate on target")

    params.set_caching_options(False)
    sel, rep = _measure_select_report(
        ev, opt.outputs["candidate"], base_eval, base.outputs["candidate"], prov, target, rounds
    )
    return prov, sel, rep


@dsl.pipeline(
    name="edge-optimize-deploy",
    description="Provision an edge target, optimize the model (PTQ, ORT INT8, QAT, pruning, "
    "clustering), evaluate every candidate on the target node, report, select by goals, and "
    "deploy the chosen model to KServe on the edge node.",
)
def edge_optimize_deploy(
    model_uri: str = "sample://baseline",
    data_uri: str = "sample://digits",
    target: str = "cpu-amd64",
    techniques: list = DEFAULT_PLAN,
    goals_json: str = DEFAULT_GOALS,
    epochs: int = 0,
    calibration_samples: int = 0,
    latency_runs: int = EVAL_LATENCY_RUNS,
    benchmark_rounds: int = 5,
    serving_namespace: str = "",
    service_account: str = "kfedge-s3",
    deploy_mode: str = "auto",
    s3_endpoint: str = "",
    s3_secret: str = S3_SECRET,
):
    """Optimize a model for an edge target and deploy the best candidate to KServe.

    Args:
        model_uri: sample://baseline, or s3:// / path of a .keras, .h5, SavedModel, .tflite, .onnx.
        data_uri: sample://digits, or s3:// / path of an .npz (x, y) or an image-folder tree.
        target: Edge target profile (cpu-amd64, cpu-arm64, nvidia-jetson, nvidia-gpu,
            coral-edgetpu, intel-cpu-openvino, intel-npu) or a target YAML path in the image.
        techniques: Optimizations to try in parallel (the FP32 reference always runs).
        goals_json: Selection goals, e.g. {"max_accuracy_drop": 0.015, "max_latency_ms": 5,
            "objective": "latency"} (accuracy drops are fractions: 0.015 = 1.5 points).
        epochs: Fine-tune epochs for QAT / pruning / clustering (0 = technique defaults).
        calibration_samples: INT8 calibration samples (0 = default).
        latency_runs: Timed runs of each candidate's own evaluation (a rough figure: other
            evaluations may share the node).
        benchmark_rounds: Interleaved rounds of the side-by-side benchmark on the target node,
            whose timings decide latency (>= 3 for an interval).
        serving_namespace: Namespace of the InferenceService (empty = the run's own).
        service_account: ServiceAccount whose Secret carries KServe's S3 settings.
        deploy_mode: auto (cluster when in a cluster, else local), cluster or local.
        s3_endpoint: S3 endpoint for s3:// URIs (e.g. http://seaweedfs.kubeflow:8333); empty =
            AWS_ENDPOINT_URL / S3_ENDPOINT if set, else KFP's own object store (the first of
            its known in-cluster addresses that answers).
        s3_secret: Secret with accesskey / secretkey for S3 (KFP's artifact-store Secret).
    """
    prov, sel, _ = _optimize_and_evaluate(locals())
    with dsl.If(sel.outputs["Output"] == True, name="a candidate met the goals"):  # noqa: E712
        dep = deploy(
            model=sel.outputs["chosen"],
            evaluation=sel.outputs["selection"],
            target=target,
            namespace=serving_namespace,
            service_account=service_account,
            mode=deploy_mode,
        ).set_display_name("deploy to KServe + smoke test")
        # an ordinary node: it only talks to the API server (the InferenceService is placed);
        # no S3: KServe's storage initializer fetches the model with the storage Secret
        dep.set_caching_options(False)


@dsl.pipeline(
    name="edge-optimize",
    description="Provision, optimize, evaluate on the target, report and select; no deployment.",
)
def edge_optimize(
    model_uri: str = "sample://baseline",
    data_uri: str = "sample://digits",
    target: str = "cpu-amd64",
    techniques: list = DEFAULT_PLAN,
    goals_json: str = DEFAULT_GOALS,
    epochs: int = 0,
    calibration_samples: int = 0,
    latency_runs: int = EVAL_LATENCY_RUNS,
    benchmark_rounds: int = 5,
    s3_endpoint: str = "",
    s3_secret: str = S3_SECRET,
):
    """Optimize a model for an edge target and report the candidates (no deployment).

    Args:
        model_uri: sample://baseline, or s3:// / path of a .keras, .h5, SavedModel, .tflite, .onnx.
        data_uri: sample://digits, or s3:// / path of an .npz (x, y) or an image-folder tree.
        target: Edge target profile name.
        techniques: Optimizations to try in parallel (the FP32 reference always runs).
        goals_json: Selection goals (accuracy drops are fractions: 0.015 = 1.5 points).
        epochs: Fine-tune epochs for QAT / pruning / clustering (0 = technique defaults).
        calibration_samples: INT8 calibration samples (0 = default).
        latency_runs: Timed runs of each candidate's own evaluation (a rough figure: other
            evaluations may share the node).
        benchmark_rounds: Interleaved rounds of the side-by-side benchmark on the target node,
            whose timings decide latency (>= 3 for an interval).
        s3_endpoint: S3 endpoint for s3:// URIs; empty = from the environment, else KFP's own
            object store.
        s3_secret: Secret with accesskey / secretkey for S3.
    """
    _optimize_and_evaluate(locals())


@dsl.pipeline(
    name="edge-evaluate",
    description="Evaluate given models on an edge target against a baseline and report.",
)
def edge_evaluate(
    baseline_uri: str,
    model_uris: list,
    data_uri: str = "sample://digits",
    target: str = "cpu-amd64",
    goals_json: str = DEFAULT_GOALS,
    latency_runs: int = EVAL_LATENCY_RUNS,
    benchmark_rounds: int = 5,
    s3_endpoint: str = "",
    s3_secret: str = S3_SECRET,
):
    """Evaluate models on an edge target (accuracy, latency on the node, size) and report.

    Args:
        baseline_uri: The reference model every other is compared with (s3:// or path).
        model_uris: The models to evaluate (.tflite, .onnx, OpenVINO, Keras, SavedModel; s3://
            or paths). Keras models are exported to the target's FP32 format first (the edge
            node runs no TensorFlow) and keep their name.
        data_uri: sample://digits, or s3:// / path of an .npz (x, y) or an image-folder tree.
        target: Edge target profile name.
        goals_json: Selection goals (accuracy drops are fractions: 0.015 = 1.5 points).
        latency_runs: Timed runs of each candidate's own evaluation (a rough figure: other
            evaluations may share the node).
        benchmark_rounds: Interleaved rounds of the side-by-side benchmark on the target node,
            whose timings decide latency (>= 3 for an interval).
        s3_endpoint: S3 endpoint for s3:// URIs; empty = from the environment, else KFP's own
            object store.
        s3_secret: Secret with accesskey / secretkey for S3.
    """
    prov = _provision(
        s3_secret,
        model_uri=baseline_uri,
        data_uri=data_uri,
        target=target,
        goals_json=goals_json,
        s3_endpoint=s3_endpoint,
        optimize=False,
    ).set_display_name("provision: import, check")
    base = _edge_ready(prov.outputs["baseline"], target).set_display_name(
        "baseline as the edge runs it"
    )
    base_eval = _evaluate(base.outputs["candidate"], prov, target, latency_runs)
    base_eval.set_display_name("evaluate baseline on target")
    with dsl.ParallelFor(model_uris) as uri:
        imp = import_model(
            uri=uri,
            s3_endpoint=s3_endpoint,
            accelerator_type=prov.outputs["accelerator_type"],
            accelerator_count=prov.outputs["accelerator_count"],
        ).set_display_name("import model")
        _s3(imp, s3_secret)
        imp.set_caching_options(False)
        ready = _edge_ready(imp.outputs["model"], target).set_display_name(
            "model as the edge runs it"
        )
        ev = _evaluate(ready.outputs["candidate"], prov, target, latency_runs)
        ev.set_display_name("evaluate on target")
    _measure_select_report(
        ev,
        ready.outputs["candidate"],
        base_eval,
        base.outputs["candidate"],
        prov,
        target,
        benchmark_rounds,
    )
