"""kubeadm's pins read from constants.go: etcd by EtcdSupportedVersion's rules, CoreDNS, pause."""

from __future__ import annotations

import pytest

from components.kubeadm_pins import etcd_image_tag, pause_version_string, read_pins

CONSTANTS = """
const (
	// DefaultEtcdVersion indicates the default etcd version that kubeadm uses
	DefaultEtcdVersion = "3.7.0-0"

	// CoreDNSVersion is the version of CoreDNS to be deployed if it is used
	CoreDNSVersion = "v1.14.6"

	// PauseVersion indicates the default pause image version for kubeadm
	PauseVersion = "3.10.2"
)

var (
	SupportedEtcdVersion = map[uint8]string{
		34: "3.6.4-0",
		35: "3.6.8-0",
		36: "3.7.0-0",
	}
)
"""
PAUSE_MAKEFILE = "REGISTRY ?= staging-k8s.gcr.io\nTAG ?= 3.10.2\nREV = $(shell git describe)\n"


def test_pins_of_a_release() -> None:
    pins = read_pins("v1.35.4", CONSTANTS, PAUSE_MAKEFILE)
    assert (pins.etcd_image_tag, pins.coredns_image_tag, pins.pause_image_tag) == ("3.6.8-0", "v1.14.6", "3.10.2")
    assert pins.etcd_version == "v3.6.8"  # the module version; -0 is the image revision
    assert pins.coredns_version == "v1.14.6"


@pytest.mark.parametrize(("release", "tag"), [
    ("v1.37.2", "3.7.0-0"),  # above the map: the newest entry (kubeadm warns and falls back)
    ("v1.36.3", "3.7.0-0"),
    ("v1.33.1", "3.6.4-0"),  # below the map: the oldest entry
])
def test_etcd_follows_etcd_supported_version(release: str, tag: str) -> None:
    assert etcd_image_tag(CONSTANTS, release) == tag


def test_without_a_map_the_default_etcd_is_used() -> None:
    assert etcd_image_tag('DefaultEtcdVersion = "3.5.21-0"\n', "v1.33.0") == "3.5.21-0"


def test_pause_makefile_must_build_what_kubeadm_pins() -> None:
    with pytest.raises(ValueError, match="pause"):
        read_pins("v1.37.2", CONSTANTS, "TAG ?= 3.9\n")


def test_pause_version_string() -> None:
    assert pause_version_string("3.10.2", "v1.37.2") == "v3.10.2-v1.37.2"


def test_pins_json_round_trip() -> None:
    pins = read_pins("v1.37.2", CONSTANTS, PAUSE_MAKEFILE)
    assert type(pins).from_json(pins.to_json()) == pins
