"""Joining nodes to a cluster and taking them out again, as kubeadm does: bootstrap tokens,
token discovery with a pinned CA, the encrypted kubeadm-certs bundle, reset."""
