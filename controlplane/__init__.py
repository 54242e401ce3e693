"""A real Kubernetes + KServe control plane for kfedge's tests, built from upstream Go modules.

``controlplane.build`` builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kubectl, kwok and KServe's controller manager from pinned build modules (``controlplane/go``)
through the Go module proxy, cached per machine; ``controlplane.plane`` starts them on
127.0.0.1 with KServe's CRDs and webhooks and fake edge nodes. ``make cluster-up`` /
``make cluster-down`` run one for people (``python -m controlplane``); the tests start one per
session (``tests/clusterkit.py``). Go only builds these upstream programs: kfedge is Python.
"""
