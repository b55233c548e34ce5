"""The CDK app: read and validate context, build the layer, compose the stack, run cdk-nag.

``npx cdk synth`` runs ``python -m cdk.app`` (cdk.json); every per-deployment choice is decided
here and handed to the stack as typed values, never read inside constructs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from cdk.config import ContextError, DeploymentConfig
from cdk.constructs.orchestration import StateMachineDefinitionError
from cdk.layer_build import REPO_ROOT, LayerBuildError, build_layer
from cdk.stack import FormicaStack

FUNCTIONS_DIR = REPO_ROOT / "functions"
DEFINITION_FILE = REPO_ROOT / "cdk" / "statemachine" / "job.asl.json"
LIBRARY_LAYER_DIR = REPO_ROOT / "layers" / "formica"  # the library alone: enough for template tests

# Behaviour switches of aws-cdk-lib, set here (not in cdk.json) so tests and `cdk synth` build the
# same template.
FEATURE_FLAGS: dict[str, object] = {
    # Access logs delivered under a bucket policy, as buckets with ACLs disabled require.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/aws-iam:minimizePolicies": False,
    "@aws-cdk/core:enablePartitionLiterals": True,
}


def deployment_environment(config: DeploymentConfig) -> Environment | None:
    """An explicit account/region only when a lookup needs one (an existing VPC)."""
    if config.vpc_id is None:
        return None
    return Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )


def build_app(
    app: App,
    *,
    layer_dir: Path,
    functions_dir: Path = FUNCTIONS_DIR,
    definition_file: Path = DEFINITION_FILE,
    environment: Environment | None = None,
) -> FormicaStack:
    """Add the stack for the app's context to ``app`` and enable the AwsSolutions checks."""
    config = DeploymentConfig.from_context(app.node.try_get_context)
    stack = FormicaStack(
        app,
        config.stack_name,
        config=config,
        layer_dir=layer_dir,
        functions_dir=functions_dir,
        definition_file=definition_file,
        env=environment or deployment_environment(config),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> int:
    app = App(context=FEATURE_FLAGS)
    try:
        build_app(app, layer_dir=build_layer())
    except (ContextError, LayerBuildError, StateMachineDefinitionError) as exc:
        print(f"formica cdk app: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
