"""Validation filters of the aws_infra role (IPv4 CIDR checks without netaddr)."""

from __future__ import annotations

import ipaddress
from typing import Any


def cidr_error(value: Any, name: str, allow_default: bool = True) -> str:
    """Return why ``value`` is not a usable IPv4 network in CIDR notation, or ''."""
    if not isinstance(value, str) or "/" not in value:
        return f"{name} must be an IPv4 network in CIDR notation like 203.0.113.7/32, got {value!r}"
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        return f"{name} {value!r} is not a valid IPv4 network: {e}"
    if not allow_default and network.prefixlen == 0:
        return (
            f"{name} {value!r} would allow the whole internet; give the admin network "
            "(for example your address with /32)"
        )
    return ""


def cidr_within(value: str, container: str) -> bool:
    """True when network ``value`` lies inside network ``container``."""
    return ipaddress.IPv4Network(value).subnet_of(ipaddress.IPv4Network(container))


def cidrs_overlap(values: list[str]) -> bool:
    """True when any two of the networks overlap."""
    networks = [ipaddress.IPv4Network(v) for v in values]
    return any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "aws_infra_cidr_error": cidr_error,
            "aws_infra_cidr_within": cidr_within,
            "aws_infra_cidrs_overlap": cidrs_overlap,
        }
