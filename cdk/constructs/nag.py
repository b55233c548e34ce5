"""cdk-nag acknowledgments: every one names the exact finding it covers and says why it is acceptable.

cdk-nag 3 reports each wildcard of an IAM policy as its own finding, spelled from the
CloudFormation value of the resource: ``Fn::GetAtt`` as ``<Logical.Arn>``, ``Ref`` as ``<Name>``,
``Fn::Join`` concatenated. :func:`nag_spelling` renders a CDK value the same way, so an
acknowledgment is written from the very ARN the policy grants and breaks if the ARN changes.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct


class NagSpellingError(ValueError):
    """A CloudFormation value cdk-nag spells in a way this module does not reproduce."""


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``AwsSolutions-IAM5[Resource::*]``) on a construct and below."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def nag_spelling(scope: IConstruct, value: str) -> str:
    """How cdk-nag spells a (possibly tokenized) string value inside a finding id."""
    return _render(Stack.of(scope).resolve(value))


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_render(part) for part in parts)
    raise NagSpellingError(f"cannot spell {value!r} the way cdk-nag does")


def acknowledge_wildcard_resource(construct: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge ``AwsSolutions-IAM5`` for one wildcard resource ARN granted by ``construct``."""
    acknowledge(construct, f"AwsSolutions-IAM5[Resource::{nag_spelling(construct, resource)}]", reason)


def logical_arn(resource: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag spells ``Fn::GetAtt [resource, attribute]`` inside a finding (``<Logical1234.Arn>``)."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise NagSpellingError(f"{resource.node.path} has no CloudFormation resource")
    return f"<{Stack.of(cfn).get_logical_id(cfn)}.{attribute}>"
