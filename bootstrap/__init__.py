"""kbootstrap: provision and bootstrap Kubernetes clusters, kubeadm-exact."""

__version__ = "0.1.0"
