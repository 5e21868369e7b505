"""The pinned component build: Kubernetes binaries, etcd, CoreDNS, the node tools and their images.

Standard library only, so `make components` runs before the kbootstrap package is installed.
Run it as `python3 -m components build` from the repository root (the Makefile does).
"""
