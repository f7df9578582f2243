#!/usr/bin/python
# Copyright: the cachedapp project authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AMI for an instance type: architecture from EC2, image from SSM."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_infra_ami
short_description: Pick the AMI for an instance type from an SSM public parameter
description:
  - Reads the processor architectures the instance type supports
    (C(DescribeInstanceTypes)), checks the requested O(architecture) against
    them (or picks the type's own when empty), reads the image ID from the SSM
    public parameter for that architecture, and checks that the image exists,
    is available and has that architecture.
  - Read-only; the same in check mode. Fails with a message naming the
    setting when the architecture does not run on the instance type.
version_added: 1.0.0
author:
  - cachedapp project
options:
  instance_type:
    description: EC2 instance type, for example V(t3.micro).
    type: str
    required: true
  architecture:
    description: V(x86_64) or V(arm64); empty takes the instance type's architecture.
    type: str
    default: ""
    choices: ["", x86_64, arm64]
  parameter:
    description: SSM parameter holding the image ID; C({architecture}) in it is replaced by the
      architecture.
    type: str
    default: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{architecture}
  setting_names:
    description: Names of the role settings behind O(instance_type) and O(architecture), used in
      error messages.
    type: dict
    default: {instance_type: instance_type, architecture: architecture}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Amazon Linux 2023 for a Graviton instance
  aws_infra_ami:
    instance_type: t4g.micro
  register: ami   # ami.image_id, ami.architecture
"""

RETURN = r"""
image_id:
  description: The image ID the parameter holds.
  returned: success
  type: str
  sample: ami-0d27e0fb3bac4d724
architecture:
  description: The architecture used.
  returned: success
  type: str
  sample: x86_64
supported_architectures:
  description: What the instance type runs.
  returned: success
  type: list
  elements: str
  sample: [x86_64]
parameter:
  description: The SSM parameter read.
  returned: success
  type: str
image_name:
  description: The image's name.
  returned: success
  type: str
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

DEFAULT_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{architecture}"
SETTING_NAMES = {"instance_type": "instance_type", "architecture": "architecture"}


def choose_architecture(
    wanted: str, supported: list[str], names: dict[str, str], itype: str
) -> str:
    """The architecture to use, or ValueError naming the settings."""
    usable = [a for a in supported if a in ("x86_64", "arm64")]
    if not usable:
        raise ValueError(
            f"{names['instance_type']} {itype!r} supports {supported}, neither x86_64 nor arm64"
        )
    if not wanted:
        return usable[0]
    if wanted not in supported:
        raise ValueError(
            f"{names['architecture']} {wanted!r} does not run on {names['instance_type']} "
            f"{itype!r} (it supports {', '.join(supported)})"
        )
    return wanted


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "instance_type": {"type": "str", "required": True},
            "architecture": {"type": "str", "default": "", "choices": ["", "x86_64", "arm64"]},
            "parameter": {"type": "str", "default": DEFAULT_PARAMETER},
            "setting_names": {"type": "dict", "default": SETTING_NAMES},
        },
        supports_check_mode=True,
    )
    p = module.params
    names = {**SETTING_NAMES, **p["setting_names"]}
    retry = AWSRetry.jittered_backoff()
    ec2 = module.client("ec2", retry_decorator=retry)
    ssm = module.client("ssm", retry_decorator=retry)
    itype = p["instance_type"]
    try:
        described = ec2.describe_instance_types(InstanceTypes=[itype], aws_retry=True)
    except is_boto3_error_code("InvalidInstanceType"):
        module.fail_json(msg=f"{names['instance_type']} {itype!r} is not an instance type here")
    except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Cannot describe instance type {itype}")
    types = described.get("InstanceTypes") or [{}]
    supported = types[0].get("ProcessorInfo", {}).get("SupportedArchitectures") or []
    try:
        arch = choose_architecture(p["architecture"], supported, names, itype)
    except ValueError as e:
        module.fail_json(msg=f"aws_infra: {e}")
    parameter = p["parameter"].replace("{architecture}", arch)
    try:
        image_id = ssm.get_parameter(Name=parameter, aws_retry=True)["Parameter"]["Value"]
    except is_boto3_error_code("ParameterNotFound"):
        module.fail_json(msg=f"aws_infra: SSM parameter {parameter} does not exist in this region")
    except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Cannot read SSM parameter {parameter}")
    try:
        images = ec2.describe_images(ImageIds=[image_id], aws_retry=True).get("Images") or []
    except (ClientError, BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Cannot describe image {image_id} (from {parameter})")
    image: dict[str, Any] = images[0] if images else {}
    if image.get("State") != "available" or image.get("Architecture") != arch:
        module.fail_json(
            msg=(
                f"aws_infra: image {image_id} from {parameter} is "
                f"{image.get('State', 'missing')}/{image.get('Architecture', '?')}, "
                f"not an available {arch} image"
            )
        )
    module.exit_json(
        changed=False,
        image_id=image_id,
        image_name=image.get("Name", ""),
        architecture=arch,
        supported_architectures=supported,
        parameter=parameter,
    )


if __name__ == "__main__":
    main()
