"""KFP component ``deploy``: serve the selected candidate on KServe (or locally), smoke-test it."""

from kfp.dsl import Artifact, Input, Model, Output

from kfedge.components import component


@component
def deploy(
    model: Input[Model],
    evaluation: Input[Artifact],
    target: str,
    endpoint: Output[Artifact],
    isvc_yaml: Output[Artifact],
    name: str = "",
    namespace: str = "",
    service_account: str = "kfedge-s3",
    storage_secret: str = "kfedge-s3",
    storage_uri: str = "",
    mode: str = "auto",
    runtime: str = "auto",
    deployment_mode: str = "RawDeployment",
    wait_timeout: int = 300,
    atol: float = 0.001,
) -> str:
    """Deploy the candidate to KServe on the target's nodes and check its answers.

    In ``cluster`` mode the InferenceService (node selector, tolerations and accelerator from the
    target, the kfedge ClusterServingRuntime of the model's format) is created or updated, the
    step waits until it is Ready and sends the sample the evaluation recorded over V2. In
    ``local`` mode the same model server runs on a loopback port in this step and is checked
    over V1 and V2. A wrong answer fails the step after the result is written.

    Args:
        model: The selected candidate (directory with the .tflite / .onnx model).
        evaluation: The selection (or evaluation) JSON: its outputs_sample holds the input
            sample and the expected answer, so no dataset is needed.
        target: Target profile name (e.g. cpu-arm64, nvidia-jetson, coral-edgetpu).
        endpoint: Result (endpoint.json): mode, url, per-protocol checks, max abs diff, passed.
        isvc_yaml: The InferenceService applied (inferenceservice.yaml); in local mode, the one
            that would be applied.
        name: InferenceService and model name (default: from the candidate's name).
        namespace: Namespace of the InferenceService (default: the run's own namespace).
        service_account: Service account of the predictor (manifests/overlays/*).
        storage_secret: Secret with KServe's S3 settings (annotations / keys KServe reads),
            named on the InferenceService (manifests/overlays/*).
        storage_uri: Where KServe fetches the model; default: this Model artifact's URI
            (s3://... or minio://... in a cluster).
        mode: auto (cluster when in-cluster config or KUBECONFIG is present, else local),
            local or cluster.
        runtime: ServingRuntime / ClusterServingRuntime name; auto: kfedge-edge-litert,
            kfedge-edge-onnx or kfedge-edge-openvino by the model's format (an image with that
            runtime only), kfedge-edge (every runtime) when the target names its own image.
        deployment_mode: RawDeployment / Standard (plain Deployment) or Serverless / Knative.
        wait_timeout: Seconds to wait for the InferenceService to be Ready.
        atol: Largest accepted absolute difference from the evaluated output.

    Returns:
        The endpoint URL the smoke test passed on.
    """
    from kfedge.deploy import deploy_from_files

    return deploy_from_files(
        model,
        evaluation,
        None,
        target,
        endpoint,
        isvc_yaml,
        name=name,
        namespace=namespace,
        service_account=service_account,
        storage_secret=storage_secret,
        storage_uri=storage_uri,
        mode=mode,
        runtime=runtime,
        deployment_mode=deployment_mode,
        wait_timeout=wait_timeout,
        atol=atol,
    )
