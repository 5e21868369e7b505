# kbootstrap: `make demo` runs the main job, `make test` installs everything and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
DEB_PACKAGES := debootstrap systemd-container dnsmasq-base nftables iproute2 etcd-server etcd-client openssl \
  haproxy keepalived openssh-client \
  gcc libc6-dev libseccomp-dev busybox-static iptables ipset conntrack kmod ipvsadm skopeo file docker-registry
# Only to check the Vagrantfile (no hypervisor here). Their recommends are ~330 more packages (qemu,
# libguestfs, an NFS server, exim4) that enable services: installed without them.
DEB_PACKAGES_NO_RECOMMENDS := vagrant vagrant-libvirt
DEMO_ROOTFS ?= ./demo-rootfs

.PHONY: all install deps lint test test-unit demo demo-rootfs bench clean components components-pin

all: test

# System packages the lab and the real-part tests need (Debian, as root).
deps:
	@updated=""; for list in "$(DEB_PACKAGES)" "$(DEB_PACKAGES_NO_RECOMMENDS)"; do \
	  missing=""; for p in $$list; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] && continue; \
	  flags=""; [ "$$list" = "$(DEB_PACKAGES_NO_RECOMMENDS)" ] && flags="--no-install-recommends"; \
	  echo "installing Debian packages:$$missing"; \
	  [ -n "$$updated" ] || { apt-get update -qq && updated=1; } || exit 1; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$flags $$missing >/dev/null || exit 1; \
	done
	@# Debian starts etcd, HAProxy, keepalived and docker-registry on install; tests start their own.
	@systemctl disable --now etcd haproxy keepalived docker-registry >/dev/null 2>&1 || true

install: deps
	$(PYTHON) -m pip install -q -e '.[test]'

lint:
	$(PYTHON) -m ruff check bootstrap components tests bench playbooks molecule
	$(PYTHON) -m mypy
	ansible-lint --profile production

# Strict: a test whose tool, package or lab is missing fails here instead of skipping (tests/conftest.py).
test: install lint components
	KBOOTSTRAP_STRICT=1 $(PYTHON) -m pytest -q -ra tests

test-unit:
	$(PYTHON) -m pytest -q tests/unit

# The main job. The lab stays up: `kbootstrap lab down --name demo`.
# A real cluster in the lab: 3 control planes behind a keepalived VIP + HAProxy, 2 workers,
# kube-router; then the nodes and the netcheck matrix, and a rerun that changes nothing.
demo: install components
	kbootstrap lab up --name demo --control-planes 3 --workers 2 --vip
	kbootstrap bundle create --components auto
	kbootstrap init -i inventories/demo/hosts.yaml
	kubectl --kubeconfig inventories/demo/artifacts/admin.conf get nodes -o wide
	kubectl --kubeconfig inventories/demo/artifacts/admin.conf get pods -A -o wide
	kbootstrap netcheck -i inventories/demo/hosts.yaml
	kbootstrap init -i inventories/demo/hosts.yaml
	@echo "the lab is still up: kbootstrap lab status --name demo; take it down with: kbootstrap lab down --name demo"

# A single-node render, no root needed: everything kubeadm init writes, under $(DEMO_ROOTFS).
demo-rootfs: install
	rm -rf $(DEMO_ROOTFS)
	kbootstrap init --rootfs $(DEMO_ROOTFS) \
	  --control-plane-endpoint cp.demo.internal:6443 \
	  --apiserver-advertise-address 192.0.2.10 --node-name demo-cp1 \
	  --pod-network-cidr 10.244.0.0/16
	kbootstrap certs check-expiration --rootfs $(DEMO_ROOTFS)

# The pinned component build (docs/components.md): every release in components/releases.py into
# $${KBOOTSTRAP_COMPONENTS:-~/.cache/kbootstrap/components}/RELEASE/; a rerun with nothing to do takes seconds.
components: deps
	$(PYTHON) -m components build

# Rewrite one release's go.mod/go.sum under components/modules/RELEASE/: make components-pin RELEASE=v1.37.2
components-pin:
	@test -n "$(RELEASE)" || { echo "usage: make components-pin RELEASE=vX.Y.Z"; exit 2; }
	$(PYTHON) -m components pin $(RELEASE)

bench: install
	$(PYTHON) bench/run_all.py

clean:
	rm -rf $(DEMO_ROOTFS) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
