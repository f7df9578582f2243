"""The local stack's members, computed in Python rather than a YAML template.

``subnet | local_infra_members(...)`` is the list of containers the role creates:
name (without the stack prefix), inventory group, fixed address and published
ports (docker's ``host:port:container-port`` form). The front member (lb when it
is enabled, else web-1) publishes HTTP and HTTPS, the monitor Prometheus's UI; lb
comes last, so web-1 has released the ports when lb takes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any


def local_infra_members(
    subnet: str,
    *,
    numbers: Mapping[str, Any],
    web_count: int,
    lb: bool,
    monitor: bool,
    bind: str,
    http_port: int,
    https_port: int,
    prometheus_port: int,
) -> list[dict[str, Any]]:
    network = ipaddress.ip_network(subnet, strict=False)

    def address(number: int) -> str:
        return str(network.network_address + int(number))

    front_ports = [f"{bind}:{int(http_port)}:80"]
    if int(https_port) > 0:
        front_ports.append(f"{bind}:{int(https_port)}:443")
    front = "lb" if lb else "web-1"

    def member(name: str, group: str, number: int, ports: list[str] | None = None) -> dict:
        if name == front:
            ports = front_ports
        return {"name": name, "group": group, "address": address(number), "ports": ports or []}

    members = [member("db", "db", numbers["db"]), member("cache", "cache", numbers["cache"])]
    if monitor:
        prometheus = [f"{bind}:{int(prometheus_port)}:9090"]
        members.append(member("monitor", "monitor", numbers["monitor"], prometheus))
    members += [
        member(f"web-{i}", "web", int(numbers["web"]) + i) for i in range(1, int(web_count) + 1)
    ]
    if lb:
        members.append(member("lb", "lb", numbers["lb"]))
    return members


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"local_infra_members": local_infra_members}
