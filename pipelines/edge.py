"""The kfedge pipelines: edge-optimize-deploy, edge-optimize and edge-evaluate.

Placement is done with kfp-kubernetes from the provision step's outputs, so ONE compiled YAML
serves every target: the target is a run-time parameter in the KFP UI. Evaluate and deploy run
on the target node (node selector, tolerations, accelerator); the optimization steps run on
ordinary nodes. S3 credentials come from KFP's own Secret (``mlpipeline-minio-artifact``).
"""

from typing import Any

from kfp import dsl, kubernetes

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
    ev.set_caching_options(False)  # latency belongs to this run's node
    return _on_target(ev, prov)


def _on_target(
    task: dsl.PipelineTask, prov: dsl.PipelineTask, accelerator: bool = True
) -> dsl.PipelineTask:
    """Place a task on the target node chosen at run time by the provision step.

    Args:
        task: The task to place.
        prov: The provision task whose outputs hold the target's placement.
        accelerator: Also request the target's accelerator (evaluate: yes, so latency is the
            accelerator's; deploy: no, its pod only talks to the API server and must not hold
            the edge node's only GPU while the InferenceService waits for it).
    """
    kubernetes.add_node_selector_json(task, node_selector_json=prov.outputs["node_selector"])
    kubernetes.add_toleration_json(task, toleration_json=prov.outputs["tolerations"])
    if accelerator:
        task.set_accelerator_type(prov.outputs["accelerator_type"])
        task.set_accelerator_limit(prov.outputs["accelerator_count"])
    return task


def _resources(task: dsl.PipelineTask, cpu: str, memory: str, cpu_limit: str, mem_limit: str):
    return (
        task.set_cpu_request(cpu)
        .set_memory_request(memory)
        .set_cpu_limit(cpu_limit)
        .set_memory_limit(mem_limit)
    )


def _provision(s3_secret: Any, **inputs: Any) -> dsl.PipelineTask:
    """The provision task: S3 credentials from the Secret, resources, retries, no caching."""
    prov = provision(**inputs)
    _s3(prov, s3_secret)
    _resources(prov, "1", "2Gi", "4", "8Gi").set_retry(2)
    prov.set_caching_options(False)  # the content behind a source URI may change
    return prov


def _select_and_report(
    ev: dsl.PipelineTask,
    model: Any,
    base_eval: dsl.PipelineTask,
    baseline_model: Any,
    prov: dsl.PipelineTask,
    target: Any,
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """Select by goals over the loop's evaluations and models, and report against the baseline.

    Args:
        ev: The evaluate task inside the ParallelFor.
        model: The model output inside the ParallelFor that ``ev`` evaluated.
        base_eval: The evaluate task of the baseline every candidate is compared with.
        baseline_model: The baseline model (deployed when it is the best that meets the goals).
        prov: The provision task (its goals fit the target).
        target: The target parameter.
    """
    sel = select(
        evaluations=dsl.Collected(ev.outputs["evaluation"]),
        models=dsl.Collected(model),
        baseline_evaluation=base_eval.outputs["evaluation"],
        baseline_model=baseline_model,
        goals_json=prov.outputs["goals"],
    ).set_display_name("select by goals")
    rep = report(
        evaluations=dsl.Collected(ev.outputs["evaluation"]),
        baseline_evaluation=base_eval.outputs["evaluation"],
        selection=sel.outputs["selection"],
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
    prov = _provision(
        inputs["s3_secret"], **{k: inputs[k] for k in _PROVISION_PARAMS}
    ).set_display_name("provision: import, check, plan")

    base = export_fp32(
        model=prov.outputs["baseline"], model_format=prov.outputs["baseline_format"]
    ).set_display_name("export FP32 reference")
    _resources(base, "1", "2Gi", "2", "4Gi")
    base_eval = _evaluate(base.outputs["candidate"], prov, target, runs)
    base_eval.set_display_name("evaluate FP32 reference on target")

    with dsl.ParallelFor(inputs["techniques"], name="technique") as technique:
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
    sel, rep = _select_and_report(
        ev, opt.outputs["candidate"], base_eval, base.outputs["candidate"], prov, target
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
    latency_runs: int = 200,
    serving_namespace: str = "kserve",
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
        latency_runs: Timed inference runs per candidate on the target node.
        serving_namespace: Namespace of the InferenceService.
        service_account: ServiceAccount whose Secret carries KServe's S3 settings.
        deploy_mode: auto (cluster when in a cluster, else local), cluster or local.
        s3_endpoint: S3 endpoint for s3:// URIs (e.g. http://seaweedfs.kubeflow:8333); empty =
            from the environment.
        s3_secret: Secret with accesskey / secretkey for S3 (KFP's artifact-store Secret).
    """
    prov, sel, _ = _optimize_and_evaluate(locals())
    with dsl.If(sel.outputs["Output"] == True, name="a candidate met the goals"):  # noqa: E712
        dep = deploy(
            model=sel.outputs["chosen"],
            evaluation=sel.outputs["selection"],
            dataset=prov.outputs["dataset"],
            target=target,
            namespace=serving_namespace,
            service_account=service_account,
            mode=deploy_mode,
        ).set_display_name("deploy to KServe + smoke test")
        _on_target(dep, prov, accelerator=False)
        _s3(dep, s3_secret)
        dep.set_retry(1).set_caching_options(False)


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
    latency_runs: int = 200,
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
        latency_runs: Timed inference runs per candidate on the target node.
        s3_endpoint: S3 endpoint for s3:// URIs; empty = from the environment.
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
    latency_runs: int = 200,
    s3_endpoint: str = "",
    s3_secret: str = S3_SECRET,
):
    """Evaluate models on an edge target (accuracy, latency on the node, size) and report.

    Args:
        baseline_uri: The reference model every other is compared with (s3:// or path).
        model_uris: The models to evaluate (.tflite, .onnx, Keras, SavedModel; s3:// or paths).
        data_uri: sample://digits, or s3:// / path of an .npz (x, y) or an image-folder tree.
        target: Edge target profile name.
        goals_json: Selection goals (accuracy drops are fractions: 0.015 = 1.5 points).
        latency_runs: Timed inference runs per model on the target node.
        s3_endpoint: S3 endpoint for s3:// URIs; empty = from the environment.
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
    base_eval = _evaluate(prov.outputs["baseline"], prov, target, latency_runs)
    base_eval.set_display_name("evaluate baseline on target")
    with dsl.ParallelFor(model_uris, name="model") as uri:
        imp = import_model(
            uri=uri,
            s3_endpoint=s3_endpoint,
            accelerator_type=prov.outputs["accelerator_type"],
            accelerator_count=prov.outputs["accelerator_count"],
        ).set_display_name("import model")
        _s3(imp, s3_secret)
        imp.set_retry(2).set_caching_options(False)
        ev = _evaluate(imp.outputs["model"], prov, target, latency_runs)
        ev.set_display_name("evaluate on target")
    _select_and_report(ev, imp.outputs["model"], base_eval, prov.outputs["baseline"], prov, target)
