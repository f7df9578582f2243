"""Filters of the aws_infra role: input checks (ipaddress, not regexes), the SSH
key's type and fingerprints, the RDS engine version to request, and the
CloudWatch alarms of the current shape."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from cryptography.hazmat.primitives import serialization

# EC2 imports these key types only (ImportKeyPair refuses ECDSA and DSA).
EC2_KEY_TYPES = ("ssh-rsa", "ssh-ed25519")


def cidr_error(value: Any, name: str, allow_default: bool = True, min_prefix: int = 0) -> str:
    """Return why ``value`` is not a usable IPv4 network in CIDR notation, or ''.

    min_prefix refuses wider networks (a shorter prefix), e.g. 16 for an
    administrator's network."""
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
    if network.prefixlen < int(min_prefix):
        return (
            f"{name} {value!r} spans {network.num_addresses} addresses (/{network.prefixlen}); "
            f"give /{min_prefix} or narrower, or set {name}_allow_wide: true to accept it"
        )
    return ""


def cidr_within(value: str, container: str) -> bool:
    """True when network ``value`` lies inside network ``container``."""
    return ipaddress.IPv4Network(value).subnet_of(ipaddress.IPv4Network(container))


def cidrs_overlap(values: list[str]) -> bool:
    """True when any two of the networks overlap."""
    networks = [ipaddress.IPv4Network(v) for v in values]
    return any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


def _ssh_blob(line: str) -> tuple[str, bytes]:
    """(type, decoded key blob) of one OpenSSH public key line; ValueError if malformed."""
    fields = line.strip().split()
    if len(fields) < 2 or "\n" in line.strip():
        raise ValueError("not one 'type AAAA... [comment]' line")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error as e:
        raise ValueError(f"the key data is not base64 ({e})") from None
    length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else 0
    inner = blob[4 : 4 + length].decode("ascii", "replace")
    if len(blob) < 4 + length or inner != fields[0]:
        raise ValueError(f"the key data does not hold a {fields[0]} key")
    return fields[0], blob


def ssh_key_error(value: Any, name: str) -> str:
    """Why ``value`` is not an OpenSSH public key EC2 can import, or ''."""
    if not isinstance(value, str):
        return f"{name} must be one OpenSSH public key line, got {type(value).__name__}"
    try:
        key_type, _ = _ssh_blob(value)
    except ValueError as e:
        return (
            f"{name} must be one OpenSSH public key line "
            f"(ssh-ed25519 AAAA... or ssh-rsa AAAA...): {e}"
        )
    if key_type not in EC2_KEY_TYPES:
        return (
            f"{name} is a {key_type} key; EC2 imports RSA (ssh-rsa) and "
            "ED25519 (ssh-ed25519) keys only"
        )
    return ""


def ssh_key_fingerprints(value: str) -> list[str]:
    """Every form in which EC2 may report the fingerprint of this imported key.

    AWS documents MD5 of the DER public key (SubjectPublicKeyInfo) for imported
    RSA keys and the OpenSSH SHA-256 (base64) for ED25519 keys; moto 5 reports
    ED25519 as colon-separated SHA-256 hex of the DER public key. A key pair whose
    fingerprint is none of these holds another key."""
    _, blob = _ssh_blob(value)
    key = serialization.load_ssh_public_key(value.strip().encode())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sha256_b64 = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    return [
        hashlib.md5(der, usedforsecurity=False).digest().hex(":"),
        sha256_b64,
        sha256_b64.rstrip("="),
        "SHA256:" + sha256_b64.rstrip("="),
        hashlib.sha256(der).digest().hex(":"),
    ]


def _version(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(value).split("."))


def db_engine_version(wanted: str, current: str | None) -> str:
    """The EngineVersion to request from RDS ('' = leave it alone).

    A major ("16") equals any running 16.x, a pinned minor ("16.4") equals
    16.4 (and 16.4.x where AWS reports one), so a converged database is never
    modified; an older version than the running one is an error (RDS cannot
    downgrade); a newer one is an upgrade."""
    wanted = str(wanted or "")
    if not wanted:
        return ""
    if not current:
        return wanted
    current = str(current)
    if current == wanted or current.startswith(wanted + "."):
        return ""
    have, want = _version(current), _version(wanted)
    if want < have[: len(want)]:
        raise AnsibleFilterError(
            f"aws_infra_db_engine_version {wanted!r} is older than the running {current!r}; "
            "RDS cannot downgrade (give the running major, or empty)"
        )
    return wanted


def db_major_upgrade(wanted: str, current: str | None) -> bool:
    """True when ``wanted`` is a newer major version than the running one."""
    if not wanted or not current:
        return False
    return _version(wanted)[0] > _version(current)[0]


def alarm_specs(
    thresholds: Mapping[str, Any],
    prefix: str,
    *,
    cache_nodes: Sequence[str] = (),
    lb_arn: str = "",
    tg_arn: str = "",
    web_ids: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The alarms for aws_infra_alarms' ``alarms`` option: four per cache node,
    three on the database, four on the load balancer (when both ARNs are known)
    and one per web host."""
    t = thresholds
    alarms: list[dict[str, Any]] = []
    for node in cache_nodes:
        cache = {"namespace": "AWS/ElastiCache", "dimensions": {"CacheClusterId": node}}
        short = "cache-" + node.removeprefix(prefix + "-")
        alarms += [
            {**cache, "name": f"{short}-engine-cpu", "metric": "EngineCPUUtilization",
             "threshold": t["cache_engine_cpu_percent"], "evaluation_periods": 2,
             "description": f"Redis engine CPU (%) on {node}"},
            {**cache, "name": f"{short}-evictions", "metric": "Evictions", "statistic": "Sum",
             "threshold": t["cache_evictions"],
             "description": f"keys evicted per 5 minutes on {node} (memory full)"},
            {**cache, "name": f"{short}-memory", "metric": "DatabaseMemoryUsagePercentage",
             "threshold": t["cache_memory_percent"],
             "description": f"Redis memory used (% of maxmemory) on {node}"},
            {**cache, "name": f"{short}-connections", "metric": "CurrConnections",
             "statistic": "Maximum", "threshold": t["cache_connections"],
             "description": f"client connections on {node}"},
        ]  # fmt: skip
    db = {"namespace": "AWS/RDS", "dimensions": {"DBInstanceIdentifier": f"{prefix}-db"}}
    alarms += [
        {**db, "name": "db-cpu", "metric": "CPUUtilization", "threshold": t["db_cpu_percent"],
         "evaluation_periods": 2, "description": "RDS CPU (%)"},
        {**db, "name": "db-free-storage", "metric": "FreeStorageSpace", "statistic": "Minimum",
         "comparison": "LessThanOrEqualToThreshold", "threshold": t["db_free_storage_bytes"],
         "description": "RDS free storage (bytes)"},
        {**db, "name": "db-connections", "metric": "DatabaseConnections", "statistic": "Maximum",
         "threshold": t["db_connections"], "description": "RDS connections"},
    ]  # fmt: skip
    if lb_arn and tg_arn:
        lb = {"LoadBalancer": lb_arn.rpartition(":loadbalancer/")[2]}
        tg = {"TargetGroup": "targetgroup/" + tg_arn.rpartition(":targetgroup/")[2]}
        alb = {"namespace": "AWS/ApplicationELB", "dimensions": lb}
        alarms += [
            {**alb, "name": "alb-5xx", "metric": "HTTPCode_ELB_5XX_Count", "statistic": "Sum",
             "threshold": t["alb_5xx"],
             "description": "5xx answered by the load balancer itself per 5 minutes"},
            {**alb, "name": "alb-target-5xx", "metric": "HTTPCode_Target_5XX_Count",
             "statistic": "Sum", "threshold": t["alb_5xx"],
             "description": "5xx answered by the web hosts per 5 minutes"},
            {**alb, "name": "alb-unhealthy-hosts", "metric": "UnHealthyHostCount",
             "statistic": "Maximum", "dimensions": lb | tg, "threshold": 1, "period": 60,
             "evaluation_periods": 2, "description": "web hosts failing the health check"},
            {**alb, "name": "alb-response-time", "metric": "TargetResponseTime",
             "threshold": t["alb_response_time_seconds"], "evaluation_periods": 2,
             "description": "average target response time (s)"},
        ]  # fmt: skip
    alarms += [
        {"name": f"web-{i}-status-check", "namespace": "AWS/EC2", "metric": "StatusCheckFailed",
         "statistic": "Maximum", "dimensions": {"InstanceId": i}, "threshold": 1, "period": 60,
         "evaluation_periods": 2, "description": f"EC2 status check failing on web host {i}"}
        for i in sorted(web_ids)
    ]  # fmt: skip
    return alarms


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "aws_infra_cidr_error": cidr_error,
            "aws_infra_cidr_within": cidr_within,
            "aws_infra_cidrs_overlap": cidrs_overlap,
            "aws_infra_ssh_key_error": ssh_key_error,
            "aws_infra_ssh_key_fingerprints": ssh_key_fingerprints,
            "aws_infra_db_engine_version": db_engine_version,
            "aws_infra_db_major_upgrade": db_major_upgrade,
            "aws_infra_alarm_specs": alarm_specs,
        }
