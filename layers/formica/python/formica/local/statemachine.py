"""The job state machine for moto: the CDK's very ASL file, placeholders replaced by local ARNs.

The local functions are named ``formica-<folder>`` (see ``lambda_dispatch``); their ARNs use
moto's default account. The placeholders are the ones the CDK substitutes (cdk/statemachine).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from formica.local.lambda_dispatch import LOCAL_ACCOUNT, function_arn

ASL_PATH = Path(__file__).resolve().parents[5] / "cdk" / "statemachine" / "job.asl.json"
"""cdk/statemachine/job.asl.json in the repository this package is installed from (``pip install -e``)."""

PLACEHOLDER_FUNCTIONS = {
    "AdvanceFunctionArn": "advance",
    "HttpTaskFunctionArn": "http_task",
    "ShellTaskFunctionArn": "shell_task",
    "LaunchFunctionArn": "launch",
    "ForkTaskFunctionArn": "fork_task",
    "ExpireTaskFunctionArn": "expire_task",
    "ContinueFunctionArn": "continue_execution",
}
"""ASL placeholder -> the functions/ folder whose Lambda it names."""

STATE_MACHINE_NAME = "formica-job"
LOCAL_ROLE_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/formica-state-machine"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


class StateMachineDefinitionError(RuntimeError):
    """The ASL file is missing or names a placeholder nobody substitutes."""


def load_asl(path: Path | None = None) -> str:
    """The raw ASL text (with its placeholders)."""
    source = path or ASL_PATH
    try:
        return source.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateMachineDefinitionError(
            f"cannot read the state machine definition {source}: {exc}"
        ) from exc


def local_definition(region: str = "us-east-1", path: Path | None = None) -> str:
    """The ASL with every placeholder replaced by the local function's ARN."""
    text = load_asl(path)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        folder = PLACEHOLDER_FUNCTIONS.get(name)
        if folder is None:
            raise StateMachineDefinitionError(f"the state machine names an unknown placeholder ${{{name}}}")
        return function_arn(folder, region)

    definition = _PLACEHOLDER.sub(substitute, text)
    json.loads(definition)  # a broken file fails here, not inside moto
    return definition


def create_local_state_machine(
    sfn_client: Any,
    *,
    name: str = STATE_MACHINE_NAME,
    region: str | None = None,
    path: Path | None = None,
) -> str:
    """Create the job state machine in moto (or find the existing one); returns its ARN."""
    resolved_region = region or sfn_client.meta.region_name or "us-east-1"
    definition = local_definition(resolved_region, path)
    try:
        response = sfn_client.create_state_machine(name=name, definition=definition, roleArn=LOCAL_ROLE_ARN)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "StateMachineAlreadyExists":
            raise
        for machine in sfn_client.list_state_machines().get("stateMachines", []):
            if machine["name"] == name:
                arn: str = machine["stateMachineArn"]
                return arn
        raise
    created: str = response["stateMachineArn"]
    return created
