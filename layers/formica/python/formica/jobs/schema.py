"""The JSON schema of the job-definition language, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import Any

from formica.jobs.models import JobDefinition


def job_definition_schema() -> dict[str, Any]:
    """JSON schema (draft 2020-12) of a job definition, by YAML key names."""
    schema = JobDefinition.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = "Formica job definition"
    schema["description"] = (
        "A formicary-style job definition (YAML). Values may use Go template or jinja2 syntax; "
        "the schema describes the document after rendering."
    )
    return schema


def job_definition_schema_json() -> str:
    return json.dumps(job_definition_schema(), indent=2, sort_keys=True) + "\n"
