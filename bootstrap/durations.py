"""Durations as Kubernetes prints them (apimachinery's duration.ShortHumanDuration): kubeadm uses
it for `certs check-expiration` RESIDUAL TIME and `token list` TTL."""

from __future__ import annotations

from datetime import timedelta


def short_human_duration(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"
