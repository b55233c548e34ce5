"""docs/job-language.md and the JSON schema follow the models (docs generated, never drifting)."""

from __future__ import annotations

from pathlib import Path

from formica.jobs.models import JobDefinition, TaskMethod
from formica.jobs.schema import DOC_MODELS, job_definition_schema, with_fields_section
from formica.jobs.validation import UNSUPPORTED_METHOD_REASON

DOC = Path(__file__).resolve().parents[3] / "docs" / "job-language.md"


def test_field_reference_in_the_docs_is_the_generated_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert with_fields_section(text) == text, (
        "docs/job-language.md field reference is stale: regenerate it with "
        "formica.jobs.schema.with_fields_section (formica schema --markdown)"
    )


def test_every_field_of_every_model_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for _, model in DOC_MODELS:
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text, (model.__name__, name)
            assert info.description, f"{model.__name__}.{name} has no description"


def test_every_method_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for method in TaskMethod:
        assert f"`{method.value}`" in text, method
    assert set(UNSUPPORTED_METHOD_REASON) <= set(TaskMethod)


def test_schema_lists_the_yaml_keys() -> None:
    schema = job_definition_schema()
    assert set(schema["required"]) == {"job_type", "tasks"}
    task_schema = schema["$defs"]["TaskDefinition"]["properties"]
    assert "except" in task_schema
    assert "on_exit_code" in task_schema
    assert set(schema["properties"]) == {
        info.alias or name for name, info in JobDefinition.model_fields.items()
    }
