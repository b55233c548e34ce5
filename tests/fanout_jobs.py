"""Task fan-out jobs shared by the e2e and workflow tests."""

from __future__ import annotations

SAME_NAME_EACH = """\
job_type: {job_type}
tasks:
- task_type: write
  method: SHELL
  fan_out:
    source: '["red", "blue"]'
    item_var: colour
  script:
    - mkdir -p out && echo "colour {{{{ .colour }}}}" > out/result.txt
  artifacts:
    paths: [out/result.txt]
  on_completed: read
- task_type: read
  method: SHELL
  dependencies: [write]
  script:
    - find . -name result.txt | sort
    - cat instance-0/out/result.txt instance-1/out/result.txt
"""
"""Two instances that write the same file name; a dependent task that reads both."""
