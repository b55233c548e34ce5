"""What of a container attempt holds a secret, and how it reaches the main container on ECS.

``secret_parts`` finds it (ECS and EKS alike); the rest of this module carries it on ECS, out of
RunTask's parameters and into an env file (EKS puts the same parts in a Kubernetes Secret,
``formica.runners.eks``).

RunTask's parameters, its container overrides included, are recorded by CloudTrail and answered by
DescribeTasks to anyone allowed ecs:DescribeTasks in the account. So a variable of the main
container whose value a mask would change (a secret config's value, or a text holding any form of
one, ``engine.masking.secret_forms``) never goes into the ``environment`` override: it goes into
the attempt's ``main.env`` object, next to the helpers' grant files
(``{org}/{request_id}/{task_type}/grants/attempt-{step}/main.env``), which the main container's
``environmentFiles`` override names and the ECS agent reads with the execution role before the
container starts. Launch writes it before RunTask; the container service deletes it when the run
is settled (``secret_env_file_keys``), as it does the ``logs`` helper's, which holds the masking
script. Every other variable stays in ``environment``.

The ECS agent reads an env file line by line (Go's ``bufio.Scanner``): ``NAME=VALUE``, the value
everything after the first ``=``, taken verbatim (no quoting, no escapes), a trailing carriage
return dropped, a line longer than 64 KiB failing the task. So a value holding a line break
(a PEM key, a kubeconfig) cannot be written as it is. It is written escaped instead (``\\`` for a
backslash, ``\\n`` and ``\\r`` for the breaks) and the main container's script starts by decoding
it in place with the shell's own ``printf '%b'`` (``decode_prologue``): the main container always
runs ``sh -c <script>``, so no tool of the image is needed, and the script sees the exact value.
A line that would still be too long is refused with an error naming the variable.

The script is RunTask's ``command`` override, and a template may render a secret config into it
(``{{ API_TOKEN }}``). Such a script travels in ``main.env`` too, as ``FORMICA_SCRIPT``; the
command is then a fixed program that decodes it, unsets the variable and runs it with ``eval``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from formica.engine.masking import SecretMasker
from formica.runners.container_grants import grants_prefix, log_env_file_key

MAIN_ENV_FILE = "main.env"
SCRIPT_ENV = "FORMICA_SCRIPT"
"""The variable of ``main.env`` that carries a script holding a secret."""
ENV_FILE_LINE_MAX_BYTES = 64 * 1024 - 1
"""The longest line the ECS agent reads from an env file (Go's ``bufio.MaxScanTokenSize``, the
line break not counted, less one for safety)."""
_DECODE_MARK = "x"
"""Appended by the decoding ``printf`` and stripped again: ``$(...)`` would drop trailing breaks."""


class SecretEnvironmentError(ValueError):
    """A secret variable cannot be carried in an env file (its line is too long)."""


def main_env_file_key(org: str, request_id: str, task_type: str, step: int) -> str:
    """The main container's ``.env`` file of an attempt: its secret variables."""
    return grants_prefix(org, request_id, task_type, step) + MAIN_ENV_FILE


def secret_env_file_keys(org: str, request_id: str, task_type: str, step: int) -> tuple[str, ...]:
    """The attempt's ``.env`` files that hold a secret (deleted when its run is settled): the main
    container's variables and the ``logs`` helper's masking script."""
    return (
        main_env_file_key(org, request_id, task_type, step),
        log_env_file_key(org, request_id, task_type, step),
    )


def split_secret_variables(
    environment: Mapping[str, str], secrets: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``environment`` as (plain, secret): a variable is secret when masking ``secrets`` would
    change its value (the value itself, or any text holding a form of it)."""
    masker = SecretMasker(secrets)
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in environment.items():
        if masker and masker.mask(value) != value:
            secret[name] = value
        else:
            plain[name] = value
    return plain, secret


def secret_parts(
    environment: Mapping[str, str], script: str, secrets: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``split_secret_variables``, and the script as ``SCRIPT_ENV`` among the secret part when a
    mask would change it too (a template rendered a secret config into it)."""
    values = tuple(secrets)
    plain, secret = split_secret_variables(environment, values)
    if values and SecretMasker(values).mask(script) != script:
        # Formica's variable wins over a task's own of that name (an override would win over the
        # env file on ECS, and the runner would run that instead).
        plain.pop(SCRIPT_ENV, None)
        secret[SCRIPT_ENV] = script
    return plain, secret


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


@dataclass(frozen=True)
class EnvFile:
    """An env file's text and the variables written escaped, which the script decodes first."""

    text: str
    escaped: tuple[str, ...]

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


def env_file(variables: Mapping[str, str], *, task_type: str, escape: Iterable[str] = ()) -> EnvFile:
    """The env file holding ``variables``, one ``NAME=VALUE`` line each; a value with a line break
    (or named in ``escape``) escaped (see the module's docstring).

    Raises
    ------
    SecretEnvironmentError
        A variable's line exceeds ``ENV_FILE_LINE_MAX_BYTES``; the message names the task and the
        variable, never the value.
    """
    lines: list[str] = []
    escaped: list[str] = []
    always = frozenset(escape)
    for name, value in variables.items():
        escape_it = name in always or "\n" in value or "\r" in value
        if escape_it:
            escaped.append(name)
        line = f"{name}={_escaped(value) if escape_it else value}"
        size = len(line.encode("utf-8"))
        if size > ENV_FILE_LINE_MAX_BYTES:
            what = "its script holds" if name == SCRIPT_ENV else f"variable {name!r} holds"
            raise SecretEnvironmentError(
                f"task {task_type!r}: {what} a secret and takes {size} bytes; the ECS agent reads"
                f" at most {ENV_FILE_LINE_MAX_BYTES} bytes per variable from the env file that"
                " carries secrets"
            )
        lines.append(line + "\n")
    return EnvFile(text="".join(lines), escaped=tuple(escaped))


def decode_prologue(names: Iterable[str]) -> str:
    """The lines that turn each escaped variable back into its value, in place (it stays exported).

    ``printf '%b'`` interprets ``\\\\``, ``\\n`` and ``\\r``; every backslash of the value was
    doubled, so nothing else is interpreted. Names are sanitised shell identifiers.
    """
    return "".join(
        f"{name}=$(printf '%b{_DECODE_MARK}' \"${name}\"); {name}=${{{name}%{_DECODE_MARK}}}\n"
        for name in names
    )


SCRIPT_RUNNER = (
    f"formica_script=$(printf '%b{_DECODE_MARK}' \"${SCRIPT_ENV}\");"
    f" formica_script=${{formica_script%{_DECODE_MARK}}}; unset {SCRIPT_ENV}\n"
    'eval "$formica_script"\n'
)
"""The main container's command when its script travels in ``main.env``: decode, unset, run."""


@dataclass(frozen=True)
class MainContainer:
    """What the main container is given: ``environment`` and ``command`` go into RunTask's
    override; ``env_file`` (None: nothing secret) into the attempt's ``main.env``."""

    environment: dict[str, str]
    command: str
    env_file: EnvFile | None = None


def main_container(
    environment: Mapping[str, str], script: str, secrets: Iterable[str], *, task_type: str
) -> MainContainer:
    """The main container's variables and script with everything secret set apart for ``main.env``:
    the variables ``split_secret_variables`` finds, and the script when it holds a secret.

    Raises
    ------
    SecretEnvironmentError
        A secret variable (or the script) is too long for an env file line.
    """
    plain, secret = secret_parts(environment, script, secrets)
    carried = SCRIPT_ENV in secret
    if not secret:
        return MainContainer(environment=plain, command=script)
    written = env_file(secret, task_type=task_type, escape=(SCRIPT_ENV,) if carried else ())
    prologue = decode_prologue(name for name in written.escaped if name != SCRIPT_ENV)
    return MainContainer(
        environment=plain, command=prologue + (SCRIPT_RUNNER if carried else script), env_file=written
    )
