#!/bin/sh
# kfedge serving image entrypoint. Options only (KServe's predictor `args`, `docker run IMAGE
# --model_dir=...`) start the model server; anything else is a command and runs as given, so
# kfp.local's DockerRunner (which passes a step's command as CMD) runs the step as a cluster pod
# does (Kubernetes replaces the ENTRYPOINT with the pod's command).
set -e
case "${1:-}" in
  ""|-*) exec python -m kfedge.serving "$@" ;;
  *) exec "$@" ;;
esac
