"""Safe YAML loading: core types only, YAML 1.2 scalars, positions, duplicate keys, alias bombs."""

from __future__ import annotations

import pytest
from formica.jobs.errors import DefinitionError
from formica.jobs.yamlload import MAX_NODES, load_yaml


def test_plain_scalars_resolve_like_yaml_1_2() -> None:
    data, _ = load_yaml("a: on\nb: yes\nc: 2024-01-01\nd: 0o17\ne: 1.5\nf: true\ng: ~\nh: '1'\ni: 012\n")
    assert data == {
        "a": "on",
        "b": "yes",
        "c": "2024-01-01",
        "d": 15,
        "e": 1.5,
        "f": True,
        "g": None,
        "h": "1",
        "i": 12,
    }


def test_positions_record_the_line_of_every_key_and_item() -> None:
    _, positions = load_yaml("job_type: j\ntasks:\n- task_type: a\n  script:\n    - one\n    - two\n")
    assert positions[("job_type",)] == 1
    assert positions[("tasks", 0, "task_type")] == 3
    assert positions[("tasks", 0, "script", 1)] == 6


def test_positions_use_the_line_mapper() -> None:
    _, positions = load_yaml("a: 1\nb: 2\n", line_of=lambda index: (index + 1) * 10)
    assert positions[("b",)] == 20


def test_duplicate_keys_are_errors_with_their_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_yaml("a: 1\nb: 2\na: 3\n")
    assert (caught.value.problems[0].line, caught.value.problems[0].message) == (3, "duplicate key 'a'")


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['ls']\n",
        "a: !!binary aGVsbG8=\n",
        "a: !custom x\n",
        "a: !!set {x}\n",
    ],
)
def test_tags_beyond_the_core_types_are_refused(text: str) -> None:
    with pytest.raises(DefinitionError, match="not allowed"):
        load_yaml(text)


def test_alias_bomb_is_refused() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"a{level}: &a{level} [{refs}]")
    with pytest.raises(DefinitionError, match=str(MAX_NODES)):
        load_yaml("\n".join(levels) + "\n")


def test_modest_aliases_and_merge_keys_work() -> None:
    data, _ = load_yaml("base: &b {image: alpine, cpu: 1}\ntask:\n  <<: *b\n  cpu: 2\n")
    assert data["task"] == {"image": "alpine", "cpu": 2}


def test_syntax_errors_carry_the_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_yaml("a: 1\nb:\n  - x\n   y: 2\n")
    assert caught.value.problems[0].line == 4
    assert caught.value.problems[0].message.startswith("YAML:")


def test_empty_document_is_none() -> None:
    assert load_yaml("") == (None, {})
