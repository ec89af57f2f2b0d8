"""Print what the AWS emulator holds for one rack, as the demo shows it.

Reads the pull-through cache rule, the repository creation template, the secret
(its name, ARN and version, never its value) and the IAM policy with the roles
it is attached to.

Usage: show-rack.py RACK   (AWS_ENDPOINT_URL must point at the emulator)
"""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError


def main():
    rack = sys.argv[1]
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit(f"AWS_ENDPOINT_URL must be the emulator on 127.0.0.1, got {endpoint}")
    ecr = boto3.client("ecr", endpoint_url=endpoint)
    secrets = boto3.client("secretsmanager", endpoint_url=endpoint)
    iam = boto3.client("iam", endpoint_url=endpoint)

    prefix = f"docker-hub-{rack}"
    try:
        rule = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])
        rule = rule["pullThroughCacheRules"][0]
        print(f"  rule    {prefix} -> {rule['upstreamRegistryUrl']}, credential {rule.get('credentialArn')}")
    except ClientError as error:
        print(f"  rule    {prefix}: {error.response['Error']['Code']}")

    templates = ecr.describe_repository_creation_templates(prefixes=[prefix])
    if templates["repositoryCreationTemplates"]:
        template = templates["repositoryCreationTemplates"][0]
        selection = json.loads(template["lifecyclePolicy"])["rules"][0]["selection"]
        print(
            f"  template {prefix}: {selection['countType']} {selection['countNumber']} "
            f"{selection.get('countUnit', '')}, applied for {', '.join(template['appliedFor'])}"
        )
    else:
        print(f"  template {prefix}: none")

    name = f"ecr-pullthroughcache/{rack}"
    try:
        secret = secrets.describe_secret(SecretId=name)
        current = [v for v, stages in secret["VersionIdsToStages"].items() if "AWSCURRENT" in stages]
        print(f"  secret  {name}, current version {current[0]}")
    except ClientError as error:
        print(f"  secret  {name}: {error.response['Error']['Code']}")

    policy_name = f"{rack}-ecr-pull-through"
    account = boto3.client("sts", endpoint_url=endpoint).get_caller_identity()["Account"]
    arn = f"arn:aws:iam::{account}:policy/{policy_name}"
    try:
        iam.get_policy(PolicyArn=arn)
        roles = iam.list_entities_for_policy(PolicyArn=arn)["PolicyRoles"]
        attached = ", ".join(role["RoleName"] for role in roles) or "no role"
        print(f"  policy  {policy_name}, attached to {attached}")
    except ClientError as error:
        print(f"  policy  {policy_name}: {error.response['Error']['Code']}")


if __name__ == "__main__":
    main()
