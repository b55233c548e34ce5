"""One size limit for a definition's text: `formica validate` and the API refuse the same file in the
same words, and every doc that gives the limit gives the constant's number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from formica.cli import main
from formica.jobs.limits import DEFINITION_MAX_BYTES, DEFINITION_PARSED_MAX_BYTES

from tests.integration.api.conftest import ApiWorld

DOCS = Path(__file__).resolve().parents[3] / "docs"
HEAD = "job_type: big\ntasks:\n- task_type: one\n  method: SHELL\n  script:\n"


def big_definition(size: int) -> str:
    line = "    - echo " + "x" * 89 + "\n"
    return HEAD + line * ((size - len(HEAD)) // len(line) + 1)


def test_validate_and_upload_refuse_a_200_kib_file_alike(
    world: ApiWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a definition of about 200 KiB
    text = big_definition(200 * 1024)
    path = tmp_path / "big.yaml"
    path.write_text(text)

    # When it is validated and uploaded
    assert main(["validate", str(path)]) == 1
    printed = capsys.readouterr().err.strip().removeprefix(f"{path}: ")
    answer = world.call(
        "POST", "/api/jobs/definitions", body=text, headers={"Content-Type": "application/yaml"}
    )

    # Then both refuse it with the same message, naming the one limit
    assert answer.status == 413
    assert answer.json()["message"] == printed
    assert printed == f"definition is {len(text)} bytes; the limit is {DEFINITION_MAX_BYTES} (128 KiB)"


def test_a_file_at_the_limit_is_not_refused_for_its_size(tmp_path: Path) -> None:
    text = big_definition(DEFINITION_MAX_BYTES - 200)
    assert len(text.encode()) <= DEFINITION_MAX_BYTES
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0


def test_the_docs_give_the_constants_numbers() -> None:
    allowed = {DEFINITION_MAX_BYTES // 1024, DEFINITION_PARSED_MAX_BYTES // 1024}
    found: set[int] = set()
    for doc in sorted(DOCS.glob("*.md")):
        for line in doc.read_text(encoding="utf-8").splitlines():
            if "definition" in line.lower():
                found.update(int(n) for n in re.findall(r"(\d+) KiB", line) if int(n) >= 100)
    assert found <= allowed, f"a doc gives a definition size limit the code does not have: {found - allowed}"
