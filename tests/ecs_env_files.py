"""An ECS env file read as the ECS agent reads it, for tests of what a container would be given."""

from __future__ import annotations


def read_as_ecs_agent(text: str) -> dict[str, str]:
    """The variables the ECS agent sets from an env file (its ``envFiles`` task resource): the text
    cut into lines as Go's ``bufio.ScanLines`` cuts it (at ``\\n``, one trailing ``\\r`` dropped), a
    line starting with ``#`` skipped, ``NAME=VALUE`` split at the first ``=``, a line whose name or
    value is empty not applied. No quoting and no escapes."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    variables: dict[str, str] = {}
    for raw in lines:
        line = raw.removesuffix("\r")
        if line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        if name and value:
            variables[name] = value
    return variables
