"""show-join-command: kubeadm's join commands and the text `kubeadm init` ends with
(cmd/util/join.go, cmd/phases/init/showjoincommand.go, cmd/token.go). Same for v1.27 to v1.37.

The join command comes from an html/template: continuation lines are a backslash, a newline and a
tab, the CA hash is followed by a space, and the values are HTML-escaped (tokens, hashes and keys
never contain what it escapes). `kubeadm token create --print-join-command` prints the same command
on one line (the backslash-newlines and tabs removed).
"""

from __future__ import annotations

from collections.abc import Sequence

from bootstrap.spec.model import KUBERNETES_DIR

ADMIN_KUBECONFIG = f"{KUBERNETES_DIR}/admin.conf"
WITHHELD = "<value withheld>"
# html/template's escaper for text: these five, nothing else (the hash's ':' and the key's hex stay).
_HTML_ESCAPES = {"&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "+": "&#43;", "\0": "\ufffd"}


def _html(text: str) -> str:
    return "".join(_HTML_ESCAPES.get(c, c) for c in text)


def join_command(endpoint: str, token: str, ca_cert_hashes: Sequence[str], *, control_plane: bool = False,
                 certificate_key: str = "", skip_token_print: bool = False,
                 skip_certificate_key_print: bool = False) -> str:
    """endpoint: admin.conf's server without https:// (host:port, [v6]:port); ca_cert_hashes:
    sha256:<hex> per CA certificate in admin.conf (bootstrap.pki.authority.spki_sha256)."""
    token_text = WITHHELD if skip_token_print else _html(token)
    text = f"kubeadm join {endpoint} --token {token_text} \\\n\t"
    text += "".join(f"--discovery-token-ca-cert-hash {_html(h)} " for h in ca_cert_hashes)
    if control_plane:
        text += "\\\n\t--control-plane "
        if certificate_key:
            text += f"--certificate-key {WITHHELD if skip_certificate_key_print else _html(certificate_key)}"
    return text


def one_line(command: str) -> str:
    """As `kubeadm token create --print-join-command` prints it."""
    return command.replace("\\\n", "").replace("\t", "")


def init_done_message(*, join_worker: str, join_control_plane: str, control_plane_endpoint: bool,
                      upload_certs: bool, kubeconfig_path: str = ADMIN_KUBECONFIG) -> str:
    """The text after the last phase, for one token (kubeadm prints it once per token)."""
    text = (
        "\n"
        "Your Kubernetes control-plane has initialized successfully!\n"
        "\n"
        "To start using your cluster, you need to run the following as a regular user:\n"
        "\n"
        "  mkdir -p $HOME/.kube\n"
        f"  sudo cp -i {kubeconfig_path} $HOME/.kube/config\n"
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n"
        "\n"
        "Alternatively, if you are the root user, you can run:\n"
        "\n"
        "  export KUBECONFIG=/etc/kubernetes/admin.conf\n"
        "\n"
        "You should now deploy a pod network to the cluster.\n"
        'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:\n'
        "  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n"
        "\n"
    )
    if control_plane_endpoint and upload_certs:
        text += (
            "You can now join any number of control-plane nodes running the following command on each as root:\n"
            "\n"
            f"  {join_control_plane}\n"
            "\n"
            "Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\n"
            "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n"
            '"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n'
            "\n"
        )
    elif control_plane_endpoint:
        text += (
            "You can now join any number of control-plane nodes by copying certificate authorities\n"
            "and service account keys on each node and then running the following as root:\n"
            "\n"
            f"  {join_control_plane}\n"
            "\n"
        )
    text += (
        "Then you can join any number of worker nodes by running the following on each as root:\n"
        "\n"
        f"{join_worker}\n"
    )
    return text


def show_join_command(*, endpoint: str, tokens: Sequence[str], ca_cert_hashes: Sequence[str],
                      control_plane_endpoint: bool, upload_certs: bool, certificate_key: str = "",
                      skip_token_print: bool = False, skip_certificate_key_print: bool = False,
                      kubeconfig_path: str = ADMIN_KUBECONFIG) -> str:
    """Everything the show-join-command phase prints: the closing text once per bootstrap token.

    control_plane_endpoint: whether ClusterConfiguration.controlPlaneEndpoint is set (only then does
    kubeadm offer the control-plane join); certificate_key: the one upload-certs used, if it ran."""
    out = []
    for token in tokens:
        worker = join_command(endpoint, token, ca_cert_hashes, skip_token_print=skip_token_print)
        cp = join_command(endpoint, token, ca_cert_hashes, control_plane=True, certificate_key=certificate_key,
                          skip_token_print=skip_token_print, skip_certificate_key_print=skip_certificate_key_print)
        out.append(init_done_message(join_worker=worker, join_control_plane=cp,
                                     control_plane_endpoint=control_plane_endpoint, upload_certs=upload_certs,
                                     kubeconfig_path=kubeconfig_path))
    return "".join(out)
