"""The shell runner: one attempt of a SHELL task, and the process machinery other local runners share.

Semantics (formicary's where it defines them; the choices below where it does not):

- ``before_script`` then ``script`` run as ONE ``sh`` script (``set -e``) in the working directory the
  caller made fresh for this attempt, so ``cd``, shell variables and exports carry from one line to the
  next. The first line that fails stops the script and its exit status is the task's exit code
  (``exit 3`` gives "3"). ``set -e`` keeps sh's rules: a failure inside an ``if`` condition, on the
  left of ``&&`` / ``||``, or before the last command of a pipeline does not stop the script. Each list
  entry may span several lines (YAML ``|`` blocks): it is copied as written, so multi-line constructs
  (if / for / heredocs) work.
- formicary's idiom ``env NAME=VALUE`` (a line made only of ``env`` and assignments) sets NAME for the
  lines after it: it is run as ``export NAME=VALUE``. ``env`` alone, or ``env X=1 command``, is the
  real ``env``. The translation is per physical line, so it also applies inside multi-line entries.
- ``after_script`` runs after the script whether it succeeded or failed, as formicary does ("post-script
  regardless the task fails or succeeds"). It is a second ``sh`` process in the same directory with the
  same environment (exports made by the script do not carry over); every line runs even if an earlier
  one failed, and its failures are noted in the log without changing the task's exit code. It shares the
  attempt's deadline; after a timeout or a cancellation it is skipped (noted in the log).
- Environment, lowest precedence first: the base environment (``env`` argument; by default only PATH,
  HOME, LANG, LC_ALL, TZ and TMPDIR of this process, so the runner's own credentials never reach user
  code), then ``ctx.params`` (except names that change how the shell or loader behaves, see
  ``RESERVED_PARAM_NAMES``), then ``task.environment``, then ``task.variables`` (formicary exports
  variables over environment). Names are sanitised to ``[A-Za-z_][A-Za-z0-9_]*``; values are strings
  (booleans ``true``/``false``, lists and maps as JSON). Values only travel in the environment, never in
  the script text.
- Outputs: the environment variable ``FORMICA_OUTPUTS`` names an empty file of this attempt, outside
  the working directory (as the script program is, so artifact globs never pick it up); ``NAME=value``
  lines the script (or after_script) writes there become the task's outputs, read after after_script,
  then the file is removed. The rules and
  bounds are ``formica.engine.outputs.parse_outputs_file``'s; a file that breaks one fails the attempt
  with ERR_TASK_OUTPUTS (no exit code; the message names the line, the rule and the script's exit
  code). After a timeout or a cancellation the file is not read.
- stdout and stderr are captured merged, the first LOG_CAP_BYTES kept and the truncation noted.
- The script runs in its own session (process group). When it ends, anything it left running in the
  group is killed. When ``ctx.timeout_seconds`` passes, the whole group is killed (SIGKILL):
  error_code ERR_TASK_TIMED_OUT, no exit code. ``ctx.is_cancelled()`` is polled about once a second;
  when True the group is killed: error_code ERR_TASK_CANCELLED, no exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shlex
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formica.engine.outputs import OUTPUTS_FILE_VARIABLE, OutputsFileError, parse_outputs_file
from formica.jobs.limits import OUTPUTS_FILE_MAX_BYTES
from formica.jobs.models import TaskDefinition
from formica.runners.base import (
    EXIT_CODE_NONE,
    LOG_CAP_BYTES,
    LiveLog,
    TaskContext,
    TaskOutcome,
    variable_text,
)

logger = logging.getLogger(__name__)

ERR_TASK_TIMED_OUT = "ERR_TASK_TIMED_OUT"
ERR_TASK_CANCELLED = "ERR_TASK_CANCELLED"
ERR_SHELL_START = "ERR_SHELL_START"
ERR_TASK_OUTPUTS = "ERR_TASK_OUTPUTS"

SHELL = "/bin/sh"
CANCEL_POLL_SECONDS = 1.0
# After the main process exits, how long output from background children is still read.
_DRAIN_SECONDS = 0.5
_READ_CHUNK = 64 * 1024
_SELECT_SECONDS = 0.1

INHERITED_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
RESERVED_PARAM_NAMES = frozenset(
    {"PATH", "HOME", "IFS", "ENV", "BASH_ENV", "PS4", "SHELL", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"}
)
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_]")
_ENV_LINE = re.compile(r"^(\s*)env(\s+.*)$")


class CappedLog:
    """A task log that keeps the first LOG_CAP_BYTES and notes that the rest was dropped."""

    def __init__(self, cap: int = LOG_CAP_BYTES, live: LiveLog | None = None) -> None:
        self._cap = cap
        self._parts: list[bytes] = []
        self._size = 0
        self.dropped = 0
        self.live = live

    def add(self, data: bytes) -> None:
        room = self._cap - self._size
        if len(data) > room:
            self.dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        if data:
            self._parts.append(data)
            self._size += len(data)
            if self.live is not None:
                self.live.add(data)

    def line(self, text: str) -> None:
        self.add(text.encode() + b"\n")

    def flush(self) -> None:
        """Send the new output to the attempt's live log when it is due (``LiveLog``)."""
        if self.live is not None:
            self.live.flush()

    def text(self) -> str:
        body = b"".join(self._parts).decode("utf-8", errors="replace")
        if self.dropped:
            body += f"\n[log truncated at {self._cap} bytes: {self.dropped} more bytes dropped]\n"
        return body


def sanitize_env_name(name: str) -> str:
    """An environment variable name sh accepts: invalid characters become ``_``, no leading digit."""
    cleaned = _NAME_BAD_CHARS.sub("_", name.strip())
    if not cleaned or cleaned[0].isdigit():
        cleaned = "_" + cleaned
    return cleaned


def env_value(value: Any) -> str:
    """A variable's value as an environment string."""
    return variable_text(value)


def base_environment() -> dict[str, str]:
    """The default base environment: a few harmless variables of this process, never its credentials."""
    env = {name: os.environ[name] for name in INHERITED_ENV_NAMES if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    return env


def task_environment(
    task: TaskDefinition, ctx: TaskContext, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a task's script sees (see the module docstring for precedence)."""
    env = dict(base_environment() if base is None else base)
    for name, value in ctx.params.items():
        clean = sanitize_env_name(name)
        if clean.upper() in RESERVED_PARAM_NAMES:
            continue
        env[clean] = env_value(value)
    for name, value in task.environment.items():
        env[sanitize_env_name(name)] = env_value(value)
    for name, value in task.variables.items():
        env[sanitize_env_name(name)] = env_value(value)
    return env


def translate_env_line(line: str) -> str:
    """formicary's ``env NAME=VALUE ...`` line becomes ``export NAME=VALUE ...``; other lines unchanged."""
    match = _ENV_LINE.match(line)
    if not match:
        return line
    try:
        words = shlex.split(match.group(2), comments=True)
    except ValueError:
        return line
    if not words or not all(_is_assignment(word) for word in words):
        return line
    return f"{match.group(1)}export{match.group(2)}"


def _is_assignment(word: str) -> bool:
    name, sep, _ = word.partition("=")
    return bool(sep) and _NAME_OK.fullmatch(name) is not None


def _entry_text(entry: str) -> str:
    return "\n".join(translate_env_line(line) for line in entry.splitlines())


def _echo(entry: str) -> str:
    lines = [line for line in entry.strip().splitlines() if line.strip()]
    shown = "$ " + (lines[0].strip() if lines else "")
    if len(lines) > 1:
        shown += " ..."
    return f"printf '%s\\n' {shlex.quote(shown)}"


def build_script(lines: Sequence[str], *, stop_on_error: bool = True) -> str:
    """The sh program for a list of script entries.

    With ``stop_on_error`` the program runs under ``set -e`` (the first failure ends it with its status);
    without, every entry runs and the program exits with the status of the first entry that failed.
    Each entry is echoed (``$ first line``) before it runs, like formicary's console.
    """
    out = ["set -e" if stop_on_error else "__formica_first_failure=0"]
    for entry in lines:
        if not entry.strip():
            continue
        out.append(_echo(entry))
        out.append(_entry_text(entry))
        if not stop_on_error:
            out.append(
                '__formica_rc=$?; if [ "$__formica_rc" -ne 0 ] && [ "$__formica_first_failure" -eq 0 ]; '
                "then __formica_first_failure=$__formica_rc; fi"
            )
    out.append("exit 0" if stop_on_error else 'exit "$__formica_first_failure"')
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class ProcessResult:
    """How a supervised process ended: returncode when it exited, else why it was killed."""

    returncode: int | None
    killed_for: str | None = None  # ERR_TASK_TIMED_OUT | ERR_TASK_CANCELLED
    start_error: str | None = None


class Deadline:
    """One deadline shared by every step of an attempt."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + max(seconds, 0.0)

    def left(self) -> float:
        return self.end - time.monotonic()


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    deadline: Deadline,
    ctx: TaskContext,
    log: CappedLog,
) -> ProcessResult:
    """Run ``argv`` in its own session, stream its merged output into ``log``, and supervise it.

    The whole process group is killed when the deadline passes, when ``ctx.is_cancelled()`` turns
    True (polled about once a second), and when the main process exits (stragglers it left behind).
    """
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ProcessResult(returncode=None, start_error=f"could not start {argv[0]!r}: {exc}")
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above guarantees it
    fd = proc.stdout.fileno()
    killed_for: str | None = None
    next_cancel_check = time.monotonic() + CANCEL_POLL_SECONDS
    exited_at: float | None = None
    eof = False
    try:
        while True:
            if eof:
                # Output closed but the process may still run (e.g. it redirected stdout): keep watching.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=_SELECT_SECONDS)
            else:
                ready, _, _ = select.select([fd], [], [], _SELECT_SECONDS)
                if ready:
                    chunk = os.read(fd, _READ_CHUNK)
                    if chunk:
                        log.add(chunk)
                    else:
                        eof = True  # every writer closed the pipe
            log.flush()
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None:
                if eof or now - exited_at >= _DRAIN_SECONDS:
                    break  # background children still holding the pipe are killed below
                continue
            if now >= deadline.end:
                killed_for = ERR_TASK_TIMED_OUT
                break
            if now >= next_cancel_check:
                next_cancel_check = now + CANCEL_POLL_SECONDS
                if ctx.is_cancelled():
                    killed_for = ERR_TASK_CANCELLED
                    break
    finally:
        _kill_group(proc.pid)
        returncode = proc.wait()
        _drain(fd, log)
        proc.stdout.close()
    if killed_for:
        logger.info("process group killed", extra={"task_type": ctx.task_type, "reason": killed_for})
        return ProcessResult(returncode=None, killed_for=killed_for)
    # A shell reports death by signal N as 128 + N.
    return ProcessResult(returncode=returncode if returncode >= 0 else 128 - returncode)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group may already be gone
        os.killpg(pgid, signal.SIGKILL)


def _drain(fd: int, log: CappedLog) -> None:
    while True:
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            return
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            return
        log.add(chunk)


def fresh_workdir(ctx: TaskContext, root: Path | None = None) -> Path:
    """A new, empty working directory for one attempt (under ``root``, else the system temp dir)."""
    label = sanitize_env_name(f"{ctx.task_type}-{ctx.attempt}")[:40]
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"formica-{label}-", dir=root))


def run_shell(
    task: TaskDefinition,
    ctx: TaskContext,
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> TaskOutcome:
    """Run one attempt of a SHELL task (already rendered) in ``workdir``.

    Parameters
    ----------
    task:
        The rendered task: before_script, script, after_script, environment, variables.
    ctx:
        The attempt's context: timeout, params, cancellation.
    workdir:
        A fresh directory for this attempt (see ``fresh_workdir``); the script runs there.
    env:
        The base environment (default: ``base_environment()``); task values are layered over it.

    Returns
    -------
    TaskOutcome
        exit_code of the first failing line (or "0"); failures never raise.
    """
    deadline = Deadline(ctx.timeout_seconds)
    log = CappedLog(live=LiveLog(ctx))
    environment = task_environment(task, ctx, env)
    outputs_file = _fresh_outputs_file()
    environment[OUTPUTS_FILE_VARIABLE] = str(outputs_file)
    try:
        outcome = _run_scripts(
            task, ctx, workdir, environment=environment, outputs_file=outputs_file, deadline=deadline, log=log
        )
    finally:
        outputs_file.unlink(missing_ok=True)
    outcome.log = log.text()
    logger.info(
        "shell task finished",
        extra={"task_type": ctx.task_type, "exit_code": outcome.exit_code, "error_code": outcome.error_code},
    )
    return outcome


def _run_scripts(
    task: TaskDefinition,
    ctx: TaskContext,
    workdir: Path,
    *,
    environment: Mapping[str, str],
    outputs_file: Path,
    deadline: Deadline,
    log: CappedLog,
) -> TaskOutcome:
    """The script, then after_script, then the outputs the script wrote."""
    main_lines = [*task.before_script, *task.script]
    result = _run_script(
        build_script(main_lines), workdir, env=environment, deadline=deadline, ctx=ctx, log=log
    )
    outcome = _outcome(result, ctx)
    if outcome.error_code:
        log.line(f"[{outcome.error_code}: {outcome.error_message}]")

    if task.after_script and any(line.strip() for line in task.after_script):
        if result.killed_for or result.start_error:
            log.line("[after_script skipped: the script did not finish]")
        else:
            log.line("$ # after_script")
            after = _run_script(
                build_script(task.after_script, stop_on_error=False),
                workdir,
                env=environment,
                deadline=deadline,
                ctx=ctx,
                log=log,
            )
            if after.killed_for:
                log.line(f"[after_script stopped: {after.killed_for}]")
            elif after.returncode:
                log.line(
                    f"[after_script failed with exit code {after.returncode}; the task's result is unchanged]"
                )
    if not (result.killed_for or result.start_error):
        outcome = _with_outputs(outcome, outputs_file, ctx, log)
    return outcome


def _run_script(
    script: str,
    workdir: Path,
    *,
    env: Mapping[str, str],
    deadline: Deadline,
    ctx: TaskContext,
    log: CappedLog,
) -> ProcessResult:
    # The program lives outside the working directory so artifact globs never pick it up.
    fd, name = tempfile.mkstemp(prefix="formica-script-", suffix=".sh")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(script)
        return run_process([SHELL, name], cwd=workdir, env=env, deadline=deadline, ctx=ctx, log=log)
    finally:
        Path(name).unlink(missing_ok=True)


def _outcome(result: ProcessResult, ctx: TaskContext) -> TaskOutcome:
    if result.start_error:
        return TaskOutcome(error_code=ERR_SHELL_START, error_message=result.start_error)
    if result.killed_for == ERR_TASK_TIMED_OUT:
        return TaskOutcome(
            exit_code=EXIT_CODE_NONE,
            error_code=ERR_TASK_TIMED_OUT,
            error_message=f"the script did not finish within the task timeout of {ctx.timeout_seconds:g}s "
            "and was killed",
        )
    if result.killed_for == ERR_TASK_CANCELLED:
        return TaskOutcome(
            exit_code=EXIT_CODE_NONE,
            error_code=ERR_TASK_CANCELLED,
            error_message="the job was cancelled; the script was killed",
        )
    return TaskOutcome(exit_code=str(result.returncode))


def _fresh_outputs_file() -> Path:
    """An empty file for ``$FORMICA_OUTPUTS`` (only this process's user may read or write it)."""
    fd, name = tempfile.mkstemp(prefix="formica-outputs-")
    os.close(fd)
    return Path(name)


def read_outputs_file(path: Path) -> dict[str, str]:
    """The outputs written to ``path``: none when the script removed it; ``OutputsFileError`` when
    it is not a regular file (a symlink is not followed) or breaks a rule (``parse_outputs_file``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise OutputsFileError(f"the file cannot be read as a regular file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise OutputsFileError("the file is not a regular file")
        data = stream.read(OUTPUTS_FILE_MAX_BYTES + 1)
    return parse_outputs_file(data)


def _with_outputs(outcome: TaskOutcome, path: Path, ctx: TaskContext, log: CappedLog) -> TaskOutcome:
    try:
        outputs = read_outputs_file(path)
    except OutputsFileError as exc:
        exited = f"the script exited {outcome.exit_code}" if outcome.exit_code else "the script failed"
        message = f"task {ctx.task_type!r}: ${OUTPUTS_FILE_VARIABLE} {exc} ({exited})"
        log.line(f"[{ERR_TASK_OUTPUTS}: {message}]")
        return TaskOutcome(exit_code=EXIT_CODE_NONE, error_code=ERR_TASK_OUTPUTS, error_message=message)
    outcome.outputs = outputs
    return outcome
