"""Start moto's server on 127.0.0.1 with the ECR calls hubcache needs added.

moto 5.2.5 has neither ECR pull-through cache rules nor repository creation
templates. It also deletes an IAM managed policy that is still attached, and
its ListEntitiesForPolicy looks at only 100 roles, users or groups, picked by
their random ids. This launcher adds the pull-through-cache and
repository-creation-template APIs to moto's ECR backend with the validation
ECR applies, makes DeletePolicy of an attached policy fail with
DeleteConflict and ListEntitiesForPolicy look at every entity, as IAM does,
then runs moto's threaded server in this process. Reset (POST
/moto-api/reset) clears the rules and templates too, because they live on
the ECR backend objects that moto recreates.

Usage: aws-emulator.py --port PORT [--ready-file PATH] [--rule-quota N]
"""

import argparse
import json
import re
import signal
import sys
import threading
from datetime import datetime, timezone

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.responses import ECRResponse
from moto.iam.exceptions import DeleteConflictException
from moto.iam.models import IAMBackend
from moto.iam.responses import IamResponse
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.secretsmanager.models import secretsmanager_backends

# ECR API reference, CreatePullThroughCacheRule: ecrRepositoryPrefix is 2 to
# 30 characters and matches this pattern (or is the literal ROOT).
PREFIX_PATTERN = re.compile(
    r"^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*|ROOT)$"
)
PREFIX_LENGTH = (2, 30)
# ECR reads upstream credentials only from secrets whose name starts with
# "ecr-pullthroughcache/".
CREDENTIAL_ARN_PATTERN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr-pullthroughcache/[a-zA-Z0-9/_+=.@-]+$"
)
UPSTREAM_REGISTRIES = {
    "ecr": None,
    "ecr-public": "public.ecr.aws",
    "quay": "quay.io",
    "k8s": "registry.k8s.io",
    "docker-hub": "registry-1.docker.io",
    "github-container-registry": "ghcr.io",
    "azure-container-registry": None,
    "gitlab-container-registry": "registry.gitlab.com",
    "chainguard": "cgr.dev",
}
# Upstream registries that ECR serves only with a Secrets Manager credential.
CREDENTIAL_REQUIRED = {
    "docker-hub",
    "github-container-registry",
    "azure-container-registry",
    "gitlab-container-registry",
}
# ECR API reference, CreateRepositoryCreationTemplate: prefix is 1 to 256
# characters and matches this pattern (or is the literal ROOT).
TEMPLATE_PREFIX_PATTERN = re.compile(
    r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$"
)
TEMPLATE_PREFIX_LENGTH = (1, 256)
APPLIED_FOR = {"REPLICATION", "PULL_THROUGH_CACHE", "CREATE_ON_PUSH"}
IMAGE_TAG_MUTABILITY = {
    "MUTABLE",
    "IMMUTABLE",
    "IMMUTABLE_WITH_EXCLUSION",
    "MUTABLE_WITH_EXCLUSION",
}
ENCRYPTION_TYPES = {"AES256", "KMS", "KMS_DSSE"}
MAX_DESCRIPTION = 256
MAX_TEMPLATE_LIFECYCLE_POLICY = 30720
MAX_REPOSITORY_POLICY = 10240
# Lifecycle policy rules, from ECR's lifecycle policy properties.
TAG_STATUSES = {"tagged", "untagged", "any"}
COUNT_TYPES = {
    "imageCountMoreThan",
    "sinceImagePushed",
    "sinceImagePulled",
    "sinceImageTransitioned",
}
ACTION_TYPES = {"expire", "transition"}
# Service quota: pull-through cache rules per registry, 50 unless raised
# with --rule-quota, as an AWS account can ask for more.
MAX_RULES = 50


class EcrError(ServiceException):
    """An ECR error with the exception name ECR returns as its code."""


def validation_error(field, value, constraint):
    return EcrError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{field}' failed to "
        f"satisfy constraint: {constraint}",
    )


def check_prefix(prefix):
    if prefix is None:
        raise validation_error("ecrRepositoryPrefix", None, "Member must not be null")
    low, high = PREFIX_LENGTH
    if not low <= len(prefix) <= high:
        raise validation_error(
            "ecrRepositoryPrefix",
            prefix,
            f"Member must have length between {low} and {high}, inclusive",
        )
    if not PREFIX_PATTERN.match(prefix):
        raise validation_error(
            "ecrRepositoryPrefix",
            prefix,
            f"Member must satisfy regular expression pattern: {PREFIX_PATTERN.pattern}",
        )


def find_secret(account_id, region, credential_arn):
    """Return moto's secret for the ARN, or raise ECR's SecretNotFoundException."""
    store = secretsmanager_backends[account_id][region].secrets
    secret = store.get(credential_arn)
    if secret is None or getattr(secret, "deleted_date", None):
        raise EcrError(
            "SecretNotFoundException",
            f"The specified secret '{credential_arn}' was not found.",
        )
    return secret


def check_credential(backend, credential_arn):
    if not CREDENTIAL_ARN_PATTERN.match(credential_arn):
        raise validation_error(
            "credentialArn",
            credential_arn,
            "Member must satisfy regular expression pattern: "
            + CREDENTIAL_ARN_PATTERN.pattern,
        )
    find_secret(backend.account_id, backend.region_name, credential_arn)


def rules_of(backend):
    """Return the backend's rules by prefix; a reset backend starts with none."""
    return backend.__dict__.setdefault("pull_through_cache_rules", {})


def rule_not_found(backend, prefix):
    return EcrError(
        "PullThroughCacheRuleNotFoundException",
        f"The pull through cache rule with prefix '{prefix}' does not exist in "
        f"the registry with id '{backend.account_id}'",
    )


def create_pull_through_cache_rule(self):
    backend = self.ecr_backend
    prefix = self._get_param("ecrRepositoryPrefix")
    upstream_url = self._get_param("upstreamRegistryUrl")
    upstream = self._get_param("upstreamRegistry")
    credential_arn = self._get_param("credentialArn")

    check_prefix(prefix)
    if not upstream_url:
        raise validation_error("upstreamRegistryUrl", None, "Member must not be null")
    if upstream is None:
        upstream = next(
            (name for name, url in UPSTREAM_REGISTRIES.items() if url == upstream_url),
            None,
        )
    if upstream not in UPSTREAM_REGISTRIES:
        raise EcrError(
            "InvalidParameterException",
            f"Invalid parameter at 'upstreamRegistry' failed to satisfy constraint: "
            f"'{upstream}' is not a supported upstream registry",
        )
    expected_url = UPSTREAM_REGISTRIES[upstream]
    if expected_url is not None and upstream_url != expected_url:
        raise EcrError(
            "InvalidParameterException",
            f"Invalid parameter at 'upstreamRegistryUrl' failed to satisfy constraint: "
            f"'{upstream_url}' is not the URL of upstream registry '{upstream}'",
        )
    if upstream in CREDENTIAL_REQUIRED and not credential_arn:
        raise EcrError(
            "InvalidParameterException",
            f"Invalid parameter at 'credentialArn' failed to satisfy constraint: "
            f"upstream registry '{upstream}' requires a credential ARN",
        )
    if credential_arn:
        check_credential(backend, credential_arn)

    rules = rules_of(backend)
    if prefix in rules:
        raise EcrError(
            "PullThroughCacheRuleAlreadyExistsException",
            f"A pull through cache rule with prefix '{prefix}' already exists in "
            f"the registry with id '{backend.account_id}'",
        )
    if len(rules) >= MAX_RULES:
        raise EcrError(
            "LimitExceededException",
            "The operation did not succeed because it would have exceeded a "
            f"service limit for your account: {MAX_RULES} pull through cache "
            "rules per registry.",
        )

    rule = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": upstream_url,
        "createdAt": datetime.now(timezone.utc),
        "registryId": backend.account_id,
        "upstreamRegistry": upstream,
    }
    if credential_arn:
        rule["credentialArn"] = credential_arn
    rules[prefix] = rule
    return ActionResult(dict(rule))


def describe_pull_through_cache_rules(self):
    backend = self.ecr_backend
    rules = rules_of(backend)
    prefixes = self._get_param("ecrRepositoryPrefixes")
    max_results = int(self._get_param("maxResults") or 100)
    start = int(self._get_param("nextToken") or 0)

    if prefixes:
        for prefix in prefixes:
            if prefix not in rules:
                raise rule_not_found(backend, prefix)
        selected = [rules[prefix] for prefix in prefixes]
    else:
        selected = sorted(rules.values(), key=lambda rule: rule["ecrRepositoryPrefix"])

    page = selected[start : start + max_results]
    result = {"pullThroughCacheRules": [dict(rule) for rule in page]}
    if start + max_results < len(selected):
        result["nextToken"] = str(start + max_results)
    return ActionResult(result)


def update_pull_through_cache_rule(self):
    backend = self.ecr_backend
    prefix = self._get_param("ecrRepositoryPrefix")
    credential_arn = self._get_param("credentialArn")

    check_prefix(prefix)
    rules = rules_of(backend)
    if prefix not in rules:
        raise rule_not_found(backend, prefix)
    if credential_arn:
        check_credential(backend, credential_arn)

    rule = rules[prefix]
    rule["credentialArn"] = credential_arn
    rule["updatedAt"] = datetime.now(timezone.utc)
    return ActionResult(
        {
            "ecrRepositoryPrefix": prefix,
            "registryId": backend.account_id,
            "updatedAt": rule["updatedAt"],
            "credentialArn": credential_arn,
        }
    )


def delete_pull_through_cache_rule(self):
    backend = self.ecr_backend
    prefix = self._get_param("ecrRepositoryPrefix")

    check_prefix(prefix)
    rules = rules_of(backend)
    if prefix not in rules:
        raise rule_not_found(backend, prefix)
    rule = rules.pop(prefix)
    rule.pop("updatedAt", None)
    return ActionResult(rule)


def validate_pull_through_cache_rule(self):
    """Report the rule valid when its secret contains a non-empty username and accessToken.

    Real ECR signs in to the upstream registry; this emulator has no network,
    so it checks the secret's presence and shape instead.
    """
    backend = self.ecr_backend
    prefix = self._get_param("ecrRepositoryPrefix")

    check_prefix(prefix)
    rules = rules_of(backend)
    if prefix not in rules:
        raise rule_not_found(backend, prefix)
    rule = rules[prefix]

    failure = None
    credential_arn = rule.get("credentialArn")
    if credential_arn:
        try:
            secret = find_secret(backend.account_id, backend.region_name, credential_arn)
            value = json.loads(secret.secret_string or "")
            if not (value.get("username") and value.get("accessToken")):
                failure = "The secret must contain non-empty username and accessToken."
        except EcrError as error:
            failure = error.message
        except (ValueError, AttributeError):
            failure = "The secret value is not a JSON object."

    result = {
        "ecrRepositoryPrefix": prefix,
        "registryId": backend.account_id,
        "upstreamRegistryUrl": rule["upstreamRegistryUrl"],
        "isValid": failure is None,
    }
    if credential_arn:
        result["credentialArn"] = credential_arn
    if failure:
        result["failure"] = failure
    return ActionResult(result)


def templates_of(backend):
    """Return the backend's repository creation templates by prefix."""
    return backend.__dict__.setdefault("repository_creation_templates", {})


def check_template_prefix(prefix):
    if prefix is None:
        raise validation_error("prefix", None, "Member must not be null")
    low, high = TEMPLATE_PREFIX_LENGTH
    if not low <= len(prefix) <= high:
        raise validation_error(
            "prefix", prefix, f"Member must have length between {low} and {high}, inclusive"
        )
    if not TEMPLATE_PREFIX_PATTERN.match(prefix):
        raise validation_error(
            "prefix",
            prefix,
            "Member must satisfy regular expression pattern: "
            + TEMPLATE_PREFIX_PATTERN.pattern,
        )


def check_max_length(field, value, high):
    if value is not None and len(value) > high:
        raise validation_error(
            field, value, f"Member must have length less than or equal to {high}"
        )


def check_enum(field, value, allowed):
    if value is not None and value not in allowed:
        raise validation_error(
            field,
            value,
            f"Member must satisfy enum value set: [{', '.join(sorted(allowed))}]",
        )


def lifecycle_failure(reason):
    return EcrError(
        "InvalidParameterException",
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
        f"'Lifecycle policy validation failure: {reason}'",
    )


def is_whole_number(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_lifecycle_policy(text):
    """Raise InvalidParameterException unless text is a lifecycle policy ECR accepts.

    NOTE: a subset of ECR's checks, the rule fields of its lifecycle policy
    properties page; ECR also checks wildcards in tagPatternList and the
    storage classes of transition actions.
    """
    try:
        policy = json.loads(text)
    except ValueError:
        raise lifecycle_failure("the policy is not valid JSON") from None
    rules = policy.get("rules") if isinstance(policy, dict) else None
    if not isinstance(rules, list) or not rules:
        raise lifecycle_failure("the policy must have a non-empty list of rules")

    priorities = []
    for rule in rules:
        if not isinstance(rule, dict):
            raise lifecycle_failure("each rule must be an object")
        priority = rule.get("rulePriority")
        if not is_whole_number(priority) or priority < 1:
            raise lifecycle_failure("rulePriority must be an integer of at least 1")
        if priority in priorities:
            raise lifecycle_failure(f"rulePriority {priority} is used by more than one rule")
        priorities.append(priority)

        selection = rule.get("selection")
        if not isinstance(selection, dict):
            raise lifecycle_failure("a rule has no selection")
        tag_status = selection.get("tagStatus")
        if tag_status not in TAG_STATUSES:
            raise lifecycle_failure(f"tagStatus {tag_status!r} is not tagged, untagged or any")
        has_tag_list = "tagPrefixList" in selection or "tagPatternList" in selection
        if tag_status == "tagged" and not has_tag_list:
            raise lifecycle_failure("tagStatus tagged requires tagPrefixList or tagPatternList")
        if tag_status != "tagged" and has_tag_list:
            raise lifecycle_failure("tag lists are allowed only with tagStatus tagged")
        count_type = selection.get("countType")
        if count_type not in COUNT_TYPES:
            raise lifecycle_failure(f"countType {count_type!r} is not supported")
        count_number = selection.get("countNumber")
        if not is_whole_number(count_number) or not 1 <= count_number <= 2**31 - 1:
            raise lifecycle_failure("countNumber must be a positive integer")
        count_unit = selection.get("countUnit")
        if count_type == "imageCountMoreThan" and count_unit is not None:
            raise lifecycle_failure("countUnit is not allowed with countType imageCountMoreThan")
        if count_type != "imageCountMoreThan" and count_unit != "days":
            raise lifecycle_failure(f"countType {count_type} requires countUnit days")

        action = rule.get("action")
        if not isinstance(action, dict) or action.get("type") not in ACTION_TYPES:
            raise lifecycle_failure("action type must be expire or transition")

    any_priorities = [
        rule["rulePriority"] for rule in rules if rule["selection"]["tagStatus"] == "any"
    ]
    if any_priorities and max(any_priorities) != max(priorities):
        raise lifecycle_failure("a rule with tagStatus any must have the highest rulePriority")


def check_template_fields(self, creating):
    """Validate the template fields of a Create or Update request and return them."""
    fields = {
        name: self._get_param(name)
        for name in (
            "description",
            "encryptionConfiguration",
            "resourceTags",
            "imageTagMutability",
            "repositoryPolicy",
            "lifecyclePolicy",
            "appliedFor",
            "customRoleArn",
        )
    }

    applied_for = fields["appliedFor"]
    if creating and applied_for is None:
        raise validation_error("appliedFor", None, "Member must not be null")
    for scenario in applied_for or []:
        check_enum("appliedFor", scenario, APPLIED_FOR)
    check_max_length("description", fields["description"], MAX_DESCRIPTION)
    check_enum("imageTagMutability", fields["imageTagMutability"], IMAGE_TAG_MUTABILITY)
    encryption = fields["encryptionConfiguration"]
    if encryption is not None:
        check_enum(
            "encryptionConfiguration.encryptionType",
            encryption.get("encryptionType"),
            ENCRYPTION_TYPES,
        )
    check_max_length("repositoryPolicy", fields["repositoryPolicy"], MAX_REPOSITORY_POLICY)

    lifecycle_policy = fields["lifecyclePolicy"]
    check_max_length("lifecyclePolicy", lifecycle_policy, MAX_TEMPLATE_LIFECYCLE_POLICY)
    if lifecycle_policy:
        check_lifecycle_policy(lifecycle_policy)
    return {name: value for name, value in fields.items() if value is not None}


def template_not_found(backend, prefix):
    return EcrError(
        "TemplateNotFoundException",
        f"The repository creation template with prefix '{prefix}' does not exist in "
        f"the registry with id '{backend.account_id}'",
    )


def create_repository_creation_template(self):
    backend = self.ecr_backend
    prefix = self._get_param("prefix")
    check_template_prefix(prefix)
    fields = check_template_fields(self, creating=True)

    templates = templates_of(backend)
    if prefix in templates:
        raise EcrError(
            "TemplateAlreadyExistsException",
            f"A repository creation template with prefix '{prefix}' already exists in "
            f"the registry with id '{backend.account_id}'",
        )
    now = datetime.now(timezone.utc)
    template = {
        "prefix": prefix,
        "encryptionConfiguration": {"encryptionType": "AES256"},
        "resourceTags": [],
        "imageTagMutability": "MUTABLE",
        **fields,
        "createdAt": now,
        "updatedAt": now,
    }
    templates[prefix] = template
    return ActionResult(
        {"registryId": backend.account_id, "repositoryCreationTemplate": dict(template)}
    )


def describe_repository_creation_templates(self):
    backend = self.ecr_backend
    templates = templates_of(backend)
    prefixes = self._get_param("prefixes")
    max_results = self._get_param("maxResults")
    if max_results is not None and not 1 <= int(max_results) <= 1000:
        raise validation_error(
            "maxResults", max_results, "Member must have value between 1 and 1000, inclusive"
        )
    max_results = int(max_results or 100)
    start = int(self._get_param("nextToken") or 0)

    if prefixes:
        for prefix in prefixes:
            check_template_prefix(prefix)
        selected = [templates[prefix] for prefix in prefixes if prefix in templates]
    else:
        selected = sorted(templates.values(), key=lambda template: template["prefix"])

    page = selected[start : start + max_results]
    result = {
        "registryId": backend.account_id,
        "repositoryCreationTemplates": [dict(template) for template in page],
    }
    if start + max_results < len(selected):
        result["nextToken"] = str(start + max_results)
    return ActionResult(result)


def update_repository_creation_template(self):
    backend = self.ecr_backend
    prefix = self._get_param("prefix")
    check_template_prefix(prefix)
    fields = check_template_fields(self, creating=False)

    templates = templates_of(backend)
    if prefix not in templates:
        raise template_not_found(backend, prefix)
    template = templates[prefix]
    template.update(fields)
    template["updatedAt"] = datetime.now(timezone.utc)
    return ActionResult(
        {"registryId": backend.account_id, "repositoryCreationTemplate": dict(template)}
    )


def delete_repository_creation_template(self):
    backend = self.ecr_backend
    prefix = self._get_param("prefix")
    check_template_prefix(prefix)

    templates = templates_of(backend)
    if prefix not in templates:
        raise template_not_found(backend, prefix)
    template = templates.pop(prefix)
    return ActionResult({"registryId": backend.account_id, "repositoryCreationTemplate": template})


def delete_policy_unless_attached(original):
    def delete_policy(self, policy_arn):
        policy = self.get_policy(policy_arn)
        if policy.attachment_count > 0:
            raise DeleteConflictException(
                "Cannot delete a policy attached to entities."
            )
        return original(self, policy_arn)

    return delete_policy


def list_entities_for_policy(self):
    """List every user, role and group the policy is attached to, in pages."""
    policy_arn = self._get_param("PolicyArn")
    entity_filter = self._get_param("EntityFilter")
    path_prefix = self._get_param("PathPrefix") or "/"
    start = int(self._get_param("Marker") or 0)
    max_items = int(self._get_param("MaxItems") or 100)

    kinds = [
        ("User", "PolicyUsers", self.backend.users.values()),
        ("Role", "PolicyRoles", self.backend.roles.values()),
        ("Group", "PolicyGroups", self.backend.groups.values()),
    ]
    matches = []
    for kind, key, entities in kinds:
        if entity_filter in ("User", "Role", "Group") and entity_filter != kind:
            continue
        for entity in sorted(entities, key=lambda entity: entity.name):
            if entity.path.startswith(path_prefix) and policy_arn in entity.managed_policies:
                matches.append((key, entity))

    page = matches[start : start + max_items]
    result = {"PolicyUsers": [], "PolicyRoles": [], "PolicyGroups": []}
    for key, entity in page:
        result[key].append(entity)
    result["IsTruncated"] = start + max_items < len(matches)
    if result["IsTruncated"]:
        result["Marker"] = str(start + max_items)
    return ActionResult(result)


def install_extensions():
    for handler in (
        create_pull_through_cache_rule,
        describe_pull_through_cache_rules,
        update_pull_through_cache_rule,
        delete_pull_through_cache_rule,
        validate_pull_through_cache_rule,
        create_repository_creation_template,
        describe_repository_creation_templates,
        update_repository_creation_template,
        delete_repository_creation_template,
    ):
        setattr(ECRResponse, handler.__name__, handler)
    IAMBackend.delete_policy = delete_policy_unless_attached(IAMBackend.delete_policy)
    IamResponse.list_entities_for_policy = list_entities_for_policy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--ready-file", help="file to write once the server accepts connections"
    )
    parser.add_argument(
        "--rule-quota",
        type=int,
        default=MAX_RULES,
        help="pull-through cache rules allowed per registry (ECR's default: 50)",
    )
    args = parser.parse_args()
    globals()["MAX_RULES"] = args.rule_quota

    install_extensions()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"AWS emulator (moto) listening on http://127.0.0.1:{args.port}", flush=True)
    if args.ready_file:
        with open(args.ready_file, "w") as ready:
            ready.write(f"http://127.0.0.1:{args.port}\n")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
