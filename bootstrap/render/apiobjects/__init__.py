"""The Kubernetes objects kubeadm's API phases create, as data.

One module per phase, each a pure function of the ClusterSpec (and what only the cluster or the
node can tell: the CA certificate, a token's UID, the Node object, the current time) that returns
plain dicts in the shape `kubectl apply` and the `kubernetes` client take, in the order kubeadm
creates them:

    uploadconfig      upload-config: kubeadm-config, kubelet-config and their RBAC
    uploadcerts       upload-certs: the short-lived token and the encrypted kubeadm-certs Secret
    markcontrolplane  mark-control-plane: the Node labels and taints, as a patch
    bootstraptoken    bootstrap-token: token Secrets, node-bootstrap RBAC, cluster-info
    coredns           addon coredns
    kubeproxy         addon kube-proxy
    joincommand       show-join-command: kubeadm's join commands and closing text
    clusteradmins     the kubeadm:cluster-admins binding made with kubeadm's first API client
    applymode         how kubeadm writes each object (create-or-update, -mutate, -retain)
    phases            the init phases' names, help and order per Kubernetes minor

Ground truth: kubeadm's source for each minor (cmd/kubeadm/app/phases/..., cited per module) and
its own --dry-run output (tests/golden/apiobjects). No I/O here.
"""
