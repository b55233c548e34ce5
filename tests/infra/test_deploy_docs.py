"""The deploy instructions name what the stack really has: every output and every context key."""

from __future__ import annotations

import re

from cdk.config import DeploymentConfig
from cdk.layer_build import REPO_ROOT
from tests.infra.synthesis import Synth

README = REPO_ROOT / "README.md"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"


def _readme_deploy_section() -> str:
    return README.read_text(encoding="utf-8").split("## Deploy to AWS", 1)[1].split("\n## ", 1)[0]


def test_every_stack_output_is_named_in_the_readme_and_in_the_deploy_guide(synth: Synth) -> None:
    outputs = set(synth.template["Outputs"])
    assert {"ApiUrl", "TableName", "LaunchRoleArn"} <= outputs
    readme = _readme_deploy_section()
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    for output in outputs:
        # An output CDK adds by itself carries a hash suffix: the docs name it without the hash.
        generated = re.fullmatch(r"(\w+?)[0-9A-F]{8}", output)
        name = f"`{generated.group(1)}" if generated else f"`{output}`"
        assert name in readme, f"README's Deploy section does not name the {output} output"
        assert name in guide, f"docs/deploy.md does not name the {output} output"


def test_every_context_key_is_named_in_the_readme() -> None:
    readme = _readme_deploy_section()
    for key in DeploymentConfig.__dataclass_fields__:
        assert f"`{key}`" in readme, f"README's Deploy section does not name the {key} context key"


def test_the_readme_deploys_the_default_stage_it_reads_outputs_from() -> None:
    readme = _readme_deploy_section()
    assert "npx cdk deploy" in readme and "npx cdk bootstrap" in readme
    assert f"--stack-name {DeploymentConfig().stack_name}" in readme
    assert "formica tokens create --direct --org" in readme
    assert "$SERVER/jobs/requests" in readme and "--data-binary @sensor-job.yaml" in readme
