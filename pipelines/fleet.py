"""The edge-fleet pipeline: one run, several targets, each its own best candidate.

Shape (every rule behind it is in ``kfedge.support``, with its source):

1. ``plan_fleet`` imports and checks model and data once and plans every target; each distinct
   technique runs once in the optimize loop, its candidate shared by the targets that run it.
2. ``bundle`` makes the loop's candidates ONE artifact: a KFP backend resolves one artifact per
   input name when an input enters a loop's DAG (rule ``collected-into-dag``), so a
   ``dsl.Collected`` list never crosses into another loop.
3. Per node group (targets that may share a node) in parallel, per target one at a time
   (``parallelism=1``): the target's FP32 reference, ``measure`` on the target's node
   (evaluations, then side by side), ``decide`` (select by the target's goals, the target's
   report) and ``deploy`` (InferenceService ``kfedge-<target>``, placed by its profile).
4. ``fleet_report``: one report, fleet summary and a column group per target.

kfp.local (2.17.3) shapes it too: a task-output *parameter* entering a loop is replaced by
the loop item, so only artifacts and pipeline parameters cross into loops (placement comes
from ``place_target`` inside the loop); loop items must be single outputs (``Output``), not
NamedTuple fields; a nested loop's outputs are collected one level at a time (``bundle`` in
the group's iteration, then at the root).
"""

from kfp import dsl

from kfedge.components.bundle import bundle
from kfedge.components.decide import decide
from kfedge.components.deploy import deploy
from kfedge.components.export_fp32 import export_fp32
from kfedge.components.fleet_groups import fleet_groups
from kfedge.components.fleet_job import fleet_job
from kfedge.components.fleet_report import fleet_report
from kfedge.components.group_targets import group_targets
from kfedge.components.measure import measure
from kfedge.components.optimize import optimize
from kfedge.components.place_target import place_target
from kfedge.components.plan_fleet import plan_fleet
from kfedge.pipelines.edge import (
    BENCHMARK_CPUS,
    BENCHMARK_MEMORY,
    DEFAULT_GOALS,
    EVAL_LATENCY_RUNS,
    S3_SECRET,
    _on_target,
    _resources,
    _s3,
)

#: The fleet the compiled pipeline offers by default (one ARM CPU, one Intel box).
DEFAULT_TARGETS = ["cpu-arm64", "intel-cpu-openvino"]


@dsl.pipeline(
    name="edge-fleet",
    description="Optimize once for several edge targets, measure every target's candidates on "
    "its own node, select by each target's goals and deploy one InferenceService per target.",
)
def edge_fleet(
    model_uri: str = "sample://baseline",
    data_uri: str = "sample://digits",
    targets: list = DEFAULT_TARGETS,
    techniques: list = [],  # noqa: B006 - KFP parameter default
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
    deploy_chosen: bool = True,
):
    """Optimize a model once for a fleet of edge targets and deploy each its best candidate.

    Args:
        model_uri: sample://baseline, or s3:// / path of a .keras, .h5 or SavedModel.
        data_uri: sample://digits, or s3:// / path of an .npz (x, y) or an image-folder tree.
        targets: Target profiles (cpu-amd64, cpu-arm64, nvidia-jetson, nvidia-gpu,
            coral-edgetpu, intel-cpu-openvino, intel-npu), each measured on its own nodes.
        techniques: Techniques to try, each for every target that runs what it writes; empty
            = each target's default plan.
        goals_json: Goals for every target, with per-target overrides under "targets", e.g.
            {"max_accuracy_drop": 0.015, "targets": {"cpu-arm64": {"max_latency_ms": 20}}}
            (accuracy drops are fractions: 0.015 = 1.5 points).
        epochs: Fine-tune epochs for QAT / pruning / clustering (0 = technique defaults).
        calibration_samples: INT8 calibration samples (0 = default).
        latency_runs: Timed runs of each candidate's own evaluation (a rough figure).
        benchmark_rounds: Interleaved rounds of each target's side-by-side benchmark, whose
            timings decide latency (>= 3 for an interval).
        serving_namespace: Namespace of the InferenceServices (empty = the run's own).
        service_account: ServiceAccount whose Secret carries KServe's S3 settings.
        deploy_mode: auto (cluster when in a cluster, else local), cluster or local.
        s3_endpoint: S3 endpoint for s3:// URIs; empty = from the environment, else KFP's own
            object store.
        s3_secret: Secret with accesskey / secretkey for S3 (KFP's artifact-store Secret).
        deploy_chosen: Deploy each target's choice (False: stop after the reports, as
            edge-optimize does).
    """
    plan = plan_fleet(
        model_uri=model_uri,
        data_uri=data_uri,
        targets=targets,
        techniques=techniques,
        epochs=epochs,
        calibration_samples=calibration_samples,
        goals_json=goals_json,
        s3_endpoint=s3_endpoint,
    ).set_display_name("plan the fleet: import, check, plan every target")
    _s3(plan, s3_secret)
    _resources(plan, "1", "2Gi", "4", "8Gi")
    plan.set_caching_options(False)  # the content behind a source URI may change
    fleet = plan.outputs["fleet"]

    with dsl.ParallelFor(plan.outputs["Output"]) as job:
        spec = fleet_job(fleet=fleet, job=job).set_display_name("job")
        spec.set_caching_options(False)
        opt = optimize(
            technique=spec.outputs["technique"],
            model=plan.outputs["baseline"],
            dataset=plan.outputs["dataset"],
            params_json=spec.outputs["params_json"],
        ).set_display_name("optimize once for every target that runs it")
        _resources(opt, "2", "4Gi", "4", "8Gi")
    candidates = bundle(items=dsl.Collected(opt.outputs["candidate"])).set_display_name(
        "every candidate, one artifact"
    )

    groups = fleet_groups(fleet=fleet).set_display_name("node groups")
    with dsl.ParallelFor(groups.output) as group:
        members = group_targets(fleet=fleet, group=group).set_display_name("group's targets")
        # targets that may share a node are measured one after another
        with dsl.ParallelFor(members.output, parallelism=1) as target:
            place = place_target(fleet=fleet, target=target).set_display_name("placement")
            base = export_fp32(
                model=plan.outputs["baseline"], model_format=place.outputs["baseline_format"]
            ).set_display_name("export FP32 reference")
            _resources(base, "1", "2Gi", "2", "4Gi")
            meas = measure(
                bundle=candidates.outputs["bundle"],
                baseline=base.outputs["candidate"],
                dataset=plan.outputs["dataset"],
                fleet=fleet,
                target=target,
                latency_runs=latency_runs,
                rounds=benchmark_rounds,
            ).set_display_name("evaluate and benchmark on the target's node")
            # whole CPUs, limits = requests: the CPU quota is what the threads are sized to
            _resources(meas, BENCHMARK_CPUS, BENCHMARK_MEMORY, BENCHMARK_CPUS, BENCHMARK_MEMORY)
            meas.set_caching_options(False)  # its figures belong to this run's node
            _on_target(meas, place)
            dec = decide(
                measured=meas.outputs["evaluations"],
                bundle=candidates.outputs["bundle"],
                baseline=base.outputs["candidate"],
                timings=meas.outputs["timings"],
                target=target,
                goals_json=place.outputs["goals"],
            ).set_display_name("select by the target's goals, report")
            dec.set_caching_options(False)
            with dsl.If(deploy_chosen == True, name="deployment asked for"):  # noqa: E712
                with dsl.If(dec.outputs["Output"] == True, name="a candidate met the goals"):  # noqa: E712
                    dep = deploy(
                        model=dec.outputs["chosen"],
                        evaluation=dec.outputs["selection"],
                        target=target,
                        name=place.outputs["service_name"],
                        namespace=serving_namespace,
                        service_account=service_account,
                        mode=deploy_mode,
                    ).set_display_name("deploy to KServe + smoke test")
                    dep.set_caching_options(False)
        reports = bundle(items=dsl.Collected(dec.outputs["report_json"])).set_display_name(
            "the group's reports"
        )
    fleet_report(reports=dsl.Collected(reports.outputs["bundle"]), fleet=fleet).set_display_name(
        "fleet report: which candidate goes where"
    )
