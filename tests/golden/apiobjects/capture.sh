#!/bin/bash
# Runs INSIDE a lab machine (never on the host): capture.py copies kubeadm, the configs and this
# script in, runs it over `lab ssh`, and turns what it leaves under $ROOT/out into the fixtures.
#
#   capture.sh ROOT VERSION       kubeadm at ROOT/VERSION/kubeadm, configs at ROOT/configs/CASE-VERSION.yaml
#
# Every API phase runs with --dry-run: kubeadm's fake client prints each object it would create.
# The certs and kubeconfig phases run first (dry-run too) into KUBEADM_INIT_DRYRUN_DIR, because
# bootstrap-token reads admin.conf from there; the CA certificate (public part only) is kept so the
# tests can recompute what depends on it (cluster-info's CA data, the join command's CA hash).
set -euo pipefail
root=$1
version=$2
kubeadm=$root/$version/kubeadm
out=$root/out/$version
rm -rf "$out"

run() {  # run NAME ARGS...: stdout to NAME.txt, stderr (klog lines with timestamps) to NAME.stderr
	local name=$1
	shift
	"$kubeadm" "$@" >"$dir/$name.txt" 2>"$dir/$name.stderr" || {
		echo "kubeadm $* failed:" >&2
		cat "$dir/$name.stderr" >&2
		exit 1
	}
}

# The dry-run client still sends GETs and LISTs to the API server named in admin.conf. The configs'
# addresses are made this machine's own (on lo), so those requests end at a closed local port and
# nothing leaves the machine; refuse to run if one of them would be routed anywhere else.
local_only() {
	local addr
	for addr in "$@"; do
		if [[ $addr == *:* ]]; then
			ip -6 addr replace "$addr/128" dev lo
			ip -6 route get "$addr" | grep -q ' dev lo ' || { echo "$addr is not local" >&2; exit 1; }
		else
			ip addr replace "$addr/32" dev lo
			ip route get "$addr" | grep -q ' dev lo ' || { echo "$addr is not local" >&2; exit 1; }
		fi
	done
}

for case in basic custom; do
	cfg=$root/configs/$case-$version.yaml
	# advertiseAddress and the controlPlaneEndpoint host ([v6]:port or host:port)
	addrs=$(sed -n 's/^ *advertiseAddress: *//p' "$cfg")
	cpe=$(sed -n 's/^controlPlaneEndpoint: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$cfg")
	if [[ -n $cpe ]]; then
		cpe_host=${cpe%:*}
		cpe_host=${cpe_host#[}
		addrs="$addrs ${cpe_host%]}"
	fi
	# shellcheck disable=SC2086
	local_only $addrs
	dir=$out/$case
	mkdir -p "$dir"
	dryrun=/tmp/kubeadm-dryrun  # a fixed path: init prints it in its closing text
	rm -rf "$dryrun" && mkdir "$dryrun"
	export KUBEADM_INIT_DRYRUN_DIR=$dryrun
	certs_dir=$(sed -n 's/^certificatesDir: *//p' "$cfg")
	certs_dir=${certs_dir:-/etc/kubernetes/pki}
	# upload-certs reads the shared CA files from certificatesDir (not the dry-run dir): placeholder
	# text stands in for them, so the fixture holds no key material and the tests can decrypt it.
	mkdir -p "$certs_dir/etcd"
	for f in ca.crt ca.key front-proxy-ca.crt front-proxy-ca.key sa.key sa.pub etcd/ca.crt etcd/ca.key; do
		echo "placeholder for $f" >"$certs_dir/$f"
	done

	run certs init phase certs all --dry-run --config "$cfg"
	run kubeconfig init phase kubeconfig all --dry-run --config "$cfg"
	cp "$dryrun/ca.crt" "$dir/ca.crt"
	run upload-config init phase upload-config all --dry-run --config "$cfg"
	run upload-certs init phase upload-certs --upload-certs --dry-run --config "$cfg"
	run mark-control-plane init phase mark-control-plane --dry-run --config "$cfg"
	run bootstrap-token init phase bootstrap-token --dry-run --config "$cfg"
	run addon-coredns init phase addon coredns --dry-run --config "$cfg"
	run addon-kube-proxy init phase addon kube-proxy --dry-run --config "$cfg"
	run print-coredns init phase addon coredns --print-manifest --config "$cfg"
	run print-kube-proxy init phase addon kube-proxy --print-manifest --config "$cfg"
	rm -f "$dir"/certs.* "$dir"/kubeconfig.*

	# show-join-command has no --dry-run of its own: a whole `init --dry-run` ends with its text.
	# Only that text is kept (from its first line on), with the CA that run made.
	rm -rf "$dryrun" && mkdir "$dryrun"
	run init init --dry-run --upload-certs --ignore-preflight-errors=all --config "$cfg"
	sed -n '/^Your Kubernetes control-plane has initialized successfully!/,$p' "$dir/init.txt" >"$dir/show-join-command.txt"
	cp "$dryrun/ca.crt" "$dir/show-join-command.ca.crt"
	rm -f "$dir/init.txt" "$dir/init.stderr"
	rm -rf "$dryrun"
done
dir=$out
run init-help init --help
echo "captured $version into $out"
