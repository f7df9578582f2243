#!/usr/bin/env python3
"""Check, with boto3, what roles/aws_infra left in an AWS endpoint (moto here).

    check_aws.py provisioned --instances N   every resource, exact rules and settings
    check_aws.py absent [--moto-gaps]        nothing of the environment is left

Reads AWS_URL (endpoint), AWS_REGION and CACHEDAPP_ENV like inventory/aws does.
Prints one line per failed expectation and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAME = "cachedapp"
ADMIN_CIDR = "198.51.100.0/24"  # molecule/aws/vars/test.yml
VPC_CIDR = "10.20.0.0/16"
PUBLIC_CIDRS = {"10.20.0.0/24", "10.20.1.0/24"}
PRIVATE_CIDRS = {"10.20.10.0/24", "10.20.11.0/24"}
ALIVE = ["pending", "running", "stopping", "stopped"]


class Checker:
    """Collects failed expectations instead of stopping at the first."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def expect(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return ok


def clients() -> dict[str, Any]:
    kwargs = {
        "endpoint_url": os.environ.get("AWS_URL") or None,
        "region_name": os.environ.get("AWS_REGION", "us-east-1"),
    }
    # Under moto's IAM enforcement the scenario runs as a user with only the
    # project's policy; these checks run as another one (CHECK_AWS_PROFILE).
    session = boto3.Session(profile_name=os.environ.get("CHECK_AWS_PROFILE") or None)
    services = ("ec2", "elbv2", "rds", "elasticache", "ssm", "cloudwatch", "sns", "acm")
    return {name: session.client(name, **kwargs) for name in services}


def tag_filters(env: str) -> list[dict[str, Any]]:
    return [
        {"Name": "tag:project", "Values": [NAME]},
        {"Name": "tag:env", "Values": [env]},
    ]


def rules_of(group: dict[str, Any]) -> set[tuple[str, int, int, str]]:
    """Ingress rules as (protocol, from, to, source) tuples."""
    rules = set()
    for perm in group["IpPermissions"]:
        key = (perm["IpProtocol"], perm.get("FromPort", -1), perm.get("ToPort", -1))
        rules.update((*key, r["CidrIp"]) for r in perm.get("IpRanges", []))
        rules.update((*key, p["GroupId"]) for p in perm.get("UserIdGroupPairs", []))
    return rules


def ssm_al2023(ssm: Any) -> str:
    """The AMI the role must pick: what AWS's public SSM parameter names."""
    name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    return ssm.get_parameter(Name=name)["Parameter"]["Value"]


def check_network(c: Checker, ec2: Any, env: str) -> dict[str, Any]:
    vpcs = ec2.describe_vpcs(Filters=tag_filters(env))["Vpcs"]
    if not c.expect(len(vpcs) == 1, f"expected one VPC tagged {NAME}/{env}, found {len(vpcs)}"):
        return {}
    vpc = vpcs[0]
    c.expect(vpc["CidrBlock"] == VPC_CIDR, f"VPC CIDR {vpc['CidrBlock']} != {VPC_CIDR}")
    attr = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")
    c.expect(attr["EnableDnsHostnames"]["Value"], "VPC DNS hostnames are off")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ]
    public = [s for s in subnets if s["CidrBlock"] in PUBLIC_CIDRS]
    private = [s for s in subnets if s["CidrBlock"] in PRIVATE_CIDRS]
    c.expect(len(subnets) == 4, f"expected 4 subnets, found {len(subnets)}")
    c.expect(all(s["MapPublicIpOnLaunch"] for s in public), "a public subnet maps no public IP")
    c.expect(not any(s["MapPublicIpOnLaunch"] for s in private), "a private subnet maps public IPs")
    for tier, group in (("public", public), ("private", private)):
        zones = {s["AvailabilityZone"] for s in group}
        c.expect(len(group) == 2 and len(zones) == 2, f"{tier} subnets not in two zones: {zones}")
    igws = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
    )["InternetGateways"]
    if c.expect(len(igws) == 1, f"expected one internet gateway, found {len(igws)}"):
        igw = igws[0]["InternetGatewayId"]
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "RouteTables"
        ]
        to_igw = [
            t
            for t in tables
            if any(
                r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId") == igw
                for r in t["Routes"]
            )
        ]
        associated = {
            a.get("SubnetId") for t in to_igw for a in t.get("Associations", []) if "SubnetId" in a
        }
        c.expect(
            associated == {s["SubnetId"] for s in public},
            f"subnets routed to the internet gateway {associated} != the public ones",
        )
    return {"vpc": vpc, "public": public, "private": private}


def security_groups(ec2: Any, vpc_id: str, env: str) -> dict[str, dict[str, Any]]:
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "SecurityGroups"
    ]
    prefix = f"{NAME}-{env}-"
    return {
        g["GroupName"].removeprefix(prefix): g for g in groups if g["GroupName"].startswith(prefix)
    }


def check_security_groups(
    c: Checker, sgs: dict[str, Any], instances: int, https: bool = False, web_tls: bool = False
) -> None:
    expected_names = {"web", "db", "cache"} | ({"alb"} if instances > 1 else set())
    c.expect(
        set(sgs) == expected_names, f"security groups {sorted(sgs)} != {sorted(expected_names)}"
    )
    if not {"web", "db", "cache"} <= set(sgs):
        return
    web = sgs["web"]["GroupId"]
    ssh = ("tcp", 22, 22, ADMIN_CIDR)
    if instances > 1 and "alb" in sgs:
        alb = sgs["alb"]["GroupId"]
        want_web = {("tcp", 80, 80, alb), ssh}
        want_alb = {("tcp", 80, 80, "0.0.0.0/0")}
        if https:
            want_alb.add(("tcp", 443, 443, "0.0.0.0/0"))
        c.expect(rules_of(sgs["alb"]) == want_alb, f"ALB rules {rules_of(sgs['alb'])}")
    else:
        want_web = {("tcp", 80, 80, "0.0.0.0/0"), ssh}  # 443 only with aws_infra_web_tls
        if web_tls:
            want_web.add(("tcp", 443, 443, "0.0.0.0/0"))
    checks = {
        "web": want_web,
        "db": {("tcp", 5432, 5432, web)},
        "cache": {("tcp", 6379, 6379, web)},
    }
    for name, want in checks.items():
        have = rules_of(sgs[name])
        c.expect(have == want, f"{name} ingress rules {sorted(have)} != {sorted(want)}")
    for name, group in sgs.items():
        open_ssh = [r for r in rules_of(group) if r[1] <= 22 <= r[2] and r[3] == "0.0.0.0/0"]
        c.expect(not open_ssh, f"{name} allows SSH from anywhere")
        https_rules = [r for r in rules_of(group) if r[1] <= 443 <= r[2]]
        if not https and not (web_tls and name == "web"):
            c.expect(not https_rules, f"{name} opens 443 without TLS: {https_rules}")


def check_instances(
    c: Checker, cl: dict[str, Any], env: str, *, count: int, net: dict[str, Any], sgs: dict
) -> list[str]:
    ec2 = cl["ec2"]
    filters = [*tag_filters(env), {"Name": "instance-state-name", "Values": ALIVE}]
    found = [
        i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]
    ]
    c.expect(len(found) == count, f"expected {count} web instances, found {len(found)}")
    newest = ssm_al2023(cl["ssm"])
    for inst in found:
        iid = inst["InstanceId"]
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        c.expect(tags.get("role") == "web", f"{iid} role tag {tags.get('role')!r}")
        c.expect(tags.get("env") == env, f"{iid} env tag {tags.get('env')!r}")
        c.expect(inst["ImageId"] == newest, f"{iid} runs {inst['ImageId']}, SSM names {newest}")
        c.expect(inst["State"]["Name"] == "running", f"{iid} is {inst['State']['Name']}")
        c.expect(inst.get("KeyName") == f"{NAME}-{env}", f"{iid} key {inst.get('KeyName')!r}")
        c.expect(
            inst.get("MetadataOptions", {}).get("HttpTokens") == "required",
            f"{iid} does not require IMDSv2",
        )
        groups = {g["GroupId"] for g in inst["SecurityGroups"]}
        c.expect(groups == {sgs["web"]["GroupId"]}, f"{iid} security groups {groups}")
        c.expect(bool(inst.get("PublicIpAddress")), f"{iid} has no public IP")
    subnets = {i["SubnetId"] for i in found}
    public = {s["SubnetId"] for s in net["public"]}
    c.expect(subnets <= public, f"web instances outside the public subnets: {subnets - public}")
    c.expect(len(subnets) == min(count, 2), f"web instances not spread over zones: {subnets}")
    return sorted(i["InstanceId"] for i in found)


def action_target(action: dict[str, Any]) -> str:
    """A redirect as "PROTOCOL:PORT STATUS"."""
    redirect = action.get("RedirectConfig") or {}
    return f"{redirect.get('Protocol')}:{redirect.get('Port')} {redirect.get('StatusCode')}"


def check_alb(
    c: Checker,
    elb: Any,
    env: str,
    *,
    count: int,
    sgs: dict,
    net: dict,
    ids: list,
    https: str = "",
) -> None:
    lbs = [
        lb
        for lb in elb.describe_load_balancers()["LoadBalancers"]
        if lb["LoadBalancerName"] == f"{NAME}-{env}-alb"
    ]
    tgs = [
        tg
        for tg in elb.describe_target_groups()["TargetGroups"]
        if tg["TargetGroupName"] == f"{NAME}-{env}-web"
    ]
    if count == 1:
        c.expect(not lbs and not tgs, "one web instance but a load balancer / target group exists")
        return
    if not c.expect(len(lbs) == 1 and len(tgs) == 1, "no load balancer or no target group"):
        return
    lb, tg = lbs[0], tgs[0]
    c.expect(lb["Scheme"] == "internet-facing", f"ALB scheme {lb['Scheme']}")
    c.expect(lb["SecurityGroups"] == [sgs["alb"]["GroupId"]], f"ALB groups {lb['SecurityGroups']}")
    lb_subnets = {z["SubnetId"] for z in lb["AvailabilityZones"]}
    c.expect(lb_subnets == {s["SubnetId"] for s in net["public"]}, "ALB not in the public subnets")
    c.expect(tg["HealthCheckPath"] == "/healthz", f"health check path {tg['HealthCheckPath']}")
    c.expect(tg["Protocol"] == "HTTP" and tg["Port"] == 80, "target group is not HTTP:80")
    targets = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
    registered = sorted(t["Target"]["Id"] for t in targets["TargetHealthDescriptions"])
    c.expect(registered == ids, f"targets {registered} != web instances {ids}")
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    actions = sorted(
        (li["Protocol"], li["Port"], a["Type"], a.get("TargetGroupArn") or action_target(a))
        for li in listeners
        for a in li["DefaultActions"]
    )
    if https:
        want = [
            ("HTTP", 80, "redirect", "HTTPS:443 HTTP_301"),
            ("HTTPS", 443, "forward", tg["TargetGroupArn"]),
        ]
        certs = [
            cert["CertificateArn"]
            for li in listeners
            if li["Protocol"] == "HTTPS"
            for cert in li.get("Certificates", [])
        ]
        c.expect(certs == [https], f"HTTPS listener certificates {certs} != [{https}]")
    else:
        want = [("HTTP", 80, "forward", tg["TargetGroupArn"])]
    c.expect(actions == want, f"listeners {actions} != {want}")


def check_data_tier(c: Checker, cl: dict[str, Any], env: str, net: dict, sgs: dict) -> None:
    prefix = f"{NAME}-{env}"
    dbs = cl["rds"].describe_db_instances()["DBInstances"]
    db = next((d for d in dbs if d["DBInstanceIdentifier"] == f"{prefix}-db"), None)
    private = {s["SubnetId"] for s in net["private"]}
    if c.expect(db is not None, "no RDS instance"):
        c.expect(db["Engine"] == "postgres", f"RDS engine {db['Engine']}")
        c.expect(db["PubliclyAccessible"] is False, "RDS is publicly accessible")
        c.expect(db["StorageEncrypted"] is True, "RDS storage is not encrypted")
        c.expect(db["DBName"] == "cachedapp", f"RDS database {db.get('DBName')}")
        db_sgs = [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]]
        c.expect(db_sgs == [sgs["db"]["GroupId"]], f"RDS security groups {db_sgs}")
        db_subnets = {s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]}
        c.expect(db_subnets == private, f"RDS subnets {db_subnets} != private {private}")
    groups = cl["elasticache"].describe_replication_groups()["ReplicationGroups"]
    rg = next((g for g in groups if g["ReplicationGroupId"] == prefix), None)
    if c.expect(rg is not None, "no replication group"):
        c.expect(rg["TransitEncryptionEnabled"] is True, "Redis TLS in transit is off")
        c.expect(rg["AuthTokenEnabled"] is True, "Redis AUTH is off")
        c.expect(rg["AtRestEncryptionEnabled"] is True, "Redis at-rest encryption is off")
        c.expect(rg["AutomaticFailover"] == "enabled", "Redis automatic failover is off")
        c.expect(rg["MultiAZ"] == "enabled", "Redis Multi-AZ is off")
        c.expect(rg["ClusterEnabled"] is False, "Redis cluster mode is on")
        members = rg["NodeGroups"][0]["NodeGroupMembers"]
        c.expect(len(members) == 2, f"Redis has {len(members)} nodes, expected primary + replica")
    subnet_groups = cl["elasticache"].describe_cache_subnet_groups()["CacheSubnetGroups"]
    csg = next((g for g in subnet_groups if g["CacheSubnetGroupName"] == f"{prefix}-cache"), None)
    if c.expect(csg is not None, "no cache subnet group"):
        cache_subnets = {s["SubnetIdentifier"] for s in csg["Subnets"]}
        c.expect(cache_subnets == private, f"cache subnets {cache_subnets} != private")
    param = cl["ssm"].get_parameter(Name=f"/{NAME}/{env}/endpoints")["Parameter"]
    published = json.loads(param["Value"])
    c.expect(param["Type"] == "String", f"endpoints parameter type {param['Type']}")
    if db is not None:
        c.expect(published["db_host"] == db["Endpoint"]["Address"], f"db_host {published}")
        c.expect(published["db_port"] == db["Endpoint"]["Port"], f"db_port {published}")
    if rg is not None:
        primary = rg["NodeGroups"][0]["PrimaryEndpoint"]
        want = f"rediss://{primary['Address']}:{primary['Port']}/0"
        c.expect(published["redis_url"] == want, f"redis_url {published['redis_url']} != {want}")
    c.expect(published["redis_mode"] == "standalone", f"redis_mode {published['redis_mode']}")
    c.expect(set(published) == {"db_host", "db_port", "redis_url", "redis_mode"}, "extra keys")


def provisioned(
    c: Checker,
    cl: dict[str, Any],
    env: str,
    instances: int,
    *,
    https: str = "",
    web_tls: bool = False,
) -> None:
    net = check_network(c, cl["ec2"], env)
    if not net:
        return
    sgs = security_groups(cl["ec2"], net["vpc"]["VpcId"], env)
    check_security_groups(c, sgs, instances, bool(https), web_tls)
    if "web" not in sgs:
        return
    ids = check_instances(c, cl, env, count=instances, net=net, sgs=sgs)
    check_alb(c, cl["elbv2"], env, count=instances, sgs=sgs, net=net, ids=ids, https=https)
    check_data_tier(c, cl, env, net, sgs)
    check_alarms(c, cl, env, instances, ids)
    keys = cl["ec2"].describe_key_pairs()["KeyPairs"]
    c.expect([k["KeyName"] for k in keys] == [f"{NAME}-{env}"], f"key pairs {keys}")


def absent(c: Checker, cl: dict[str, Any], env: str, moto_gaps: bool) -> None:
    """Nothing of the environment left. moto_gaps tolerates exactly what moto
    cannot delete: a replication group stuck in 'deleting' and the cache
    subnet group (no DeleteCacheSubnetGroup)."""
    prefix = f"{NAME}-{env}"
    ec2 = cl["ec2"]
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag_filters(env))["Vpcs"]]
    c.expect(not vpcs, f"VPCs left: {vpcs}")
    alive = [{"Name": "instance-state-name", "Values": ALIVE}]
    left = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=alive)["Reservations"]
        for i in r["Instances"]
    ]
    c.expect(not left, f"instances left: {left}")
    groups = [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]]
    c.expect(all(g == "default" for g in groups), f"security groups left: {groups}")
    keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    c.expect(not keys, f"key pairs left: {keys}")
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]}
    igws = [
        g["InternetGatewayId"]
        for g in ec2.describe_internet_gateways()["InternetGateways"]
        if not {a["VpcId"] for a in g.get("Attachments", [])} <= default_vpcs
        or not g.get("Attachments")
    ]
    c.expect(not igws, f"internet gateways left: {igws}")
    lbs = [lb["LoadBalancerName"] for lb in cl["elbv2"].describe_load_balancers()["LoadBalancers"]]
    c.expect(not lbs, f"load balancers left: {lbs}")
    tgs = [tg["TargetGroupName"] for tg in cl["elbv2"].describe_target_groups()["TargetGroups"]]
    c.expect(not tgs, f"target groups left: {tgs}")
    dbs = [d["DBInstanceIdentifier"] for d in cl["rds"].describe_db_instances()["DBInstances"]]
    c.expect(not dbs, f"RDS instances left: {dbs}")
    dbsg = [g["DBSubnetGroupName"] for g in cl["rds"].describe_db_subnet_groups()["DBSubnetGroups"]]
    c.expect(not dbsg, f"RDS subnet groups left: {dbsg}")
    snaps = [s["DBSnapshotIdentifier"] for s in cl["rds"].describe_db_snapshots()["DBSnapshots"]]
    c.expect(not snaps, f"RDS snapshots left: {snaps}")
    alarms = [a["AlarmName"] for a in cl["cloudwatch"].describe_alarms()["MetricAlarms"]]
    c.expect(not alarms, f"alarms left: {alarms}")
    topics = [t["TopicArn"] for t in cl["sns"].list_topics()["Topics"]]
    c.expect(not topics, f"SNS topics left: {topics}")
    params = [
        p["Name"]
        for p in cl["ssm"].describe_parameters()["Parameters"]
        if not p["Name"].startswith("/aws/service/")  # AWS's public ones (the AMI)
    ]
    c.expect(not params, f"SSM parameters left: {params}")
    cache = cl["elasticache"]
    rgs = [
        (g["ReplicationGroupId"], g["Status"])
        for g in cache.describe_replication_groups()["ReplicationGroups"]
    ]
    csgs = [
        g["CacheSubnetGroupName"] for g in cache.describe_cache_subnet_groups()["CacheSubnetGroups"]
    ]
    if moto_gaps:
        c.expect(rgs in ([], [(prefix, "deleting")]), f"replication groups left: {rgs}")
        c.expect(csgs in ([], [f"{prefix}-cache"]), f"cache subnet groups left: {csgs}")
    else:
        c.expect(not rgs, f"replication groups left: {rgs}")
        c.expect(not csgs, f"cache subnet groups left: {csgs}")


def check_alarms(c: Checker, cl: dict[str, Any], env: str, instances: int, ids: list) -> None:
    """The topic (tagged) and exactly the alarms for this shape, all notifying it."""
    prefix = f"{NAME}-{env}"
    topics = [t["TopicArn"] for t in cl["sns"].list_topics()["Topics"]]
    topic = next((t for t in topics if t.endswith(f":{prefix}-alarms")), None)
    if not c.expect(topic is not None, f"no alarm topic among {topics}"):
        return
    tags = {
        t["Key"]: t["Value"] for t in cl["sns"].list_tags_for_resource(ResourceArn=topic)["Tags"]
    }
    c.expect(tags.get("project") == NAME and tags.get("env") == env, f"topic tags {tags}")
    subs = cl["sns"].list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    c.expect(
        [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "ops@example.com")],
        f"topic subscriptions {subs}",
    )
    groups = cl["elasticache"].describe_replication_groups(ReplicationGroupId=prefix)
    nodes = [m.removeprefix(f"{prefix}-") for m in groups["ReplicationGroups"][0]["MemberClusters"]]
    want = {
        f"{prefix}-cache-{node}-{metric}"
        for node in nodes
        for metric in ("engine-cpu", "evictions", "memory", "connections")
    }
    want |= {f"{prefix}-db-{m}" for m in ("cpu", "free-storage", "connections")}
    want |= {f"{prefix}-web-{i}-status-check" for i in ids}
    if instances > 1:
        want |= {
            f"{prefix}-alb-{m}" for m in ("5xx", "target-5xx", "unhealthy-hosts", "response-time")
        }
    alarms = cl["cloudwatch"].describe_alarms(AlarmNamePrefix=f"{prefix}-")["MetricAlarms"]
    have = {a["AlarmName"] for a in alarms}
    c.expect(have == want, f"alarms: missing {sorted(want - have)}, extra {sorted(have - want)}")
    for alarm in alarms:
        c.expect(
            alarm["AlarmActions"] == [topic],
            f"{alarm['AlarmName']} notifies {alarm['AlarmActions']}",
        )


def import_certificate() -> str:
    """A throw-away self-signed certificate in (moto's) ACM, for the HTTPS listener."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachedapp.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return clients()["acm"].import_certificate(
        Certificate=cert.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )["CertificateArn"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    prov = sub.add_parser("provisioned")
    prov.add_argument("--instances", type=int, required=True)
    prov.add_argument("--https", default="", help="the ALB's certificate ARN (HTTPS expected)")
    prov.add_argument("--web-tls", action="store_true", help="one host serving HTTPS itself")
    sub.add_parser("certificate", help="import a self-signed certificate into ACM, print its ARN")
    gone = sub.add_parser("absent")
    gone.add_argument("--moto-gaps", action="store_true")
    args = parser.parse_args()
    env = os.environ.get("CACHEDAPP_ENV", "production")
    checker = Checker()
    cl = clients()
    if args.what == "certificate":
        print(import_certificate())
        return 0
    if args.what == "provisioned":
        provisioned(checker, cl, env, args.instances, https=args.https, web_tls=args.web_tls)
    else:
        absent(checker, cl, env, args.moto_gaps)
    for failure in checker.failures:
        print(f"FAIL: {failure}")
    if checker.failures:
        return 1
    print(f"OK: {args.what} ({env})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
