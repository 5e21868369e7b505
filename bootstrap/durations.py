"""Durations as Kubernetes prints them: Go's time.Duration.String() (config files, kubeadm's
warnings) and apimachinery's duration.ShortHumanDuration (kubeadm's `certs check-expiration`
RESIDUAL TIME and `token list` TTL)."""

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


def go_duration(d: timedelta) -> str:
    """time.Duration.String(): 8760h0m0s, 1m30s, 2.5s, 300ms, 0s."""
    micros = d // timedelta(microseconds=1)
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:  # under a second Go switches unit: ms, µs
        if micros % 1000 == 0:
            return f"{sign}{micros // 1000}ms"
        return f"{sign}{_trim(micros / 1000)}ms" if micros >= 1000 else f"{sign}{micros}µs"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds = _trim(rest / 1_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")
