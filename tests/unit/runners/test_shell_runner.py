"""The shell runner, running real `sh` processes in temporary directories."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.base import LOG_CAP_BYTES
from formica.runners.shell import (
    ERR_SHELL_START,
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    build_script,
    fresh_workdir,
    run_shell,
    sanitize_env_name,
    task_environment,
    translate_env_line,
)

from tests.unit.runners.conftest import make_context


def shell_task(*script: str, **fields: object) -> TaskDefinition:
    return TaskDefinition.model_validate({"task_type": "third", "script": list(script), **fields})


def process_gone(pid: int, within: float = 3.0) -> bool:
    """True when the pid no longer runs (absent, or a zombie waiting for its reaper)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_seed_third_task_env_line_date_artifact_and_environment(tmp_path: Path) -> None:
    task = shell_task(
        "date > date.txt",
        "env NEW_ENV_VAR=xyz",
        "echo variable value is $NEW_ENV_VAR",
        "echo old is $OLD_ENV_VAR",
        environment={"OLD_ENV_VAR": "ijk"},
    )

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "0"
    assert outcome.error_code is None
    assert "variable value is xyz\n" in outcome.log
    assert "old is ijk\n" in outcome.log
    assert (tmp_path / "date.txt").read_text().strip()


def test_first_failing_line_gives_the_exit_code_and_stops(tmp_path: Path) -> None:
    task = shell_task("echo one", "sh -c 'exit 7'", "echo never-printed")

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "7"
    assert "one\n" in outcome.log
    assert "never-printed" not in outcome.log


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5])
def test_exit_n_is_the_exit_code(tmp_path: Path, code: int) -> None:
    outcome = run_shell(shell_task("echo nonce 42", f"exit {code}"), make_context(), workdir=tmp_path)

    assert outcome.exit_code == str(code)


def test_conditionals_and_pipelines_do_not_stop_the_script(tmp_path: Path) -> None:
    task = shell_task(
        "if false; then echo no; fi",
        "false || echo recovered",
        "false | true",
        "test -f missing && echo no",
        "echo reached",
    )

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "0"
    assert "recovered\n" in outcome.log
    assert "reached\n" in outcome.log


def test_multi_line_entries_run_as_written_and_state_carries_between_lines(tmp_path: Path) -> None:
    task = shell_task(
        "for i in 1 2 3; do\n  echo item $i\ndone\n",
        "mkdir sub && cd sub",
        "COUNT=5",
        'if [ "$COUNT" -gt 3 ]; then\n  echo big > here.txt\nfi',
        "env A=1 B='two words'",
        'echo "$A/$B"',
    )

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "0", outcome.log
    assert "item 1\nitem 2\nitem 3\n" in outcome.log
    assert (tmp_path / "sub" / "here.txt").read_text() == "big\n"
    assert "1/two words\n" in outcome.log


def test_a_failure_inside_a_multi_line_entry_stops_it(tmp_path: Path) -> None:
    outcome = run_shell(shell_task("echo a\nfalse\necho b"), make_context(), workdir=tmp_path)

    assert outcome.exit_code == "1"
    assert "\nb\n" not in outcome.log


def test_env_alone_prints_and_env_with_a_command_stays_the_real_env(tmp_path: Path) -> None:
    task = shell_task(
        "env",
        "env ONLY_FOR_CMD=bar sh -c 'echo cmd saw $ONLY_FOR_CMD'",
        'echo "later [${ONLY_FOR_CMD:-unset}]"',
        environment={"SHOWN_BY_ENV": "yes"},
    )

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert "SHOWN_BY_ENV=yes" in outcome.log
    assert "cmd saw bar\n" in outcome.log
    assert "later [unset]\n" in outcome.log


def test_translate_env_line() -> None:
    assert translate_env_line("env NEW_ENV_VAR=xyz") == "export NEW_ENV_VAR=xyz"
    assert translate_env_line('  env A=1 B="x y"') == '  export A=1 B="x y"'
    assert translate_env_line("env") == "env"
    assert translate_env_line("env -i A=1 sh") == "env -i A=1 sh"
    assert translate_env_line("env A=1 cmd") == "env A=1 cmd"
    assert translate_env_line("environment=1") == "environment=1"
    assert translate_env_line("env 'unterminated") == "env 'unterminated"


def test_params_environment_and_variables_precedence(tmp_path: Path) -> None:
    task = shell_task(
        'echo "A=$A B=$B C=$C D=$D E=$E"',
        'echo "PATH ok: $(command -v sh)"',
        environment={"B": "env", "C": "env"},
        variables={"C": "var", "D": True, "E": {"k": [1]}},
    )
    ctx = make_context(params={"A": "param", "B": "param", "PATH": "/nowhere"})

    outcome = run_shell(task, ctx, workdir=tmp_path, env={"PATH": os.environ["PATH"], "A": "base"})

    assert 'A=param B=env C=var D=true E={"k":[1]}\n' in outcome.log
    assert "PATH ok: /" in outcome.log  # a param cannot replace PATH


def test_names_are_sanitised_and_values_never_reach_the_script_text(tmp_path: Path) -> None:
    evil = "$(touch pwned); `touch pwned2` 'x"
    task = shell_task('echo "[$my_key] [$_1x]"', variables={"my-key": evil, "1x": "one"})

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert f"[{evil}] [one]\n" in outcome.log
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()
    assert sanitize_env_name("a.b-c") == "a_b_c"
    assert sanitize_env_name("9lives") == "_9lives"


def test_default_base_environment_keeps_the_runners_credentials_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "super-secret")
    monkeypatch.setenv("FORMICA_TABLE_NAME", "t")

    outcome = run_shell(
        shell_task('echo "[${AWS_SECRET_ACCESS_KEY:-none}] [${FORMICA_TABLE_NAME:-none}]"'),
        make_context(),
        workdir=tmp_path,
    )

    assert "[none] [none]\n" in outcome.log
    assert outcome.exit_code == "0"
    assert task_environment(shell_task(), make_context())["PATH"]


def test_before_script_runs_first_and_its_failure_skips_the_script(tmp_path: Path) -> None:
    ok = shell_task("echo script", before_script=["echo before"])
    failing = shell_task("echo script-ran", before_script=["exit 3"], after_script=["echo cleanup"])

    ok_outcome = run_shell(ok, make_context(), workdir=tmp_path)
    failed_outcome = run_shell(failing, make_context(), workdir=tmp_path)

    assert ok_outcome.log.index("before\n") < ok_outcome.log.index("script\n")
    assert failed_outcome.exit_code == "3"
    assert "script-ran" not in failed_outcome.log
    assert "cleanup\n" in failed_outcome.log


def test_after_script_runs_after_a_failure_every_line_and_keeps_the_exit_code(tmp_path: Path) -> None:
    task = shell_task(
        "echo main",
        "exit 2",
        after_script=["echo first-cleanup", "false", "echo second-cleanup"],
    )

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "2"
    assert "first-cleanup\n" in outcome.log
    assert "second-cleanup\n" in outcome.log
    assert "after_script failed with exit code 1" in outcome.log


def test_after_script_failure_does_not_fail_a_successful_task(tmp_path: Path) -> None:
    outcome = run_shell(shell_task("true", after_script=["exit 9"]), make_context(), workdir=tmp_path)

    assert outcome.exit_code == "0"


def test_stderr_is_captured_with_stdout(tmp_path: Path) -> None:
    outcome = run_shell(shell_task("echo out", "echo err >&2", "echo out2"), make_context(), workdir=tmp_path)

    assert outcome.log.index("out\n") < outcome.log.index("err\n") < outcome.log.index("out2\n")


def test_log_is_capped_and_the_truncation_noted(tmp_path: Path) -> None:
    outcome = run_shell(
        shell_task("head -c 400000 /dev/zero | tr '\\0' a", "echo done"), make_context(), workdir=tmp_path
    )

    assert outcome.exit_code == "0"
    assert len(outcome.log.encode()) < LOG_CAP_BYTES + 200
    assert "[log truncated at 262144 bytes:" in outcome.log


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    task = shell_task("echo $$ > shell.pid", "sleep 30 & echo $! > child.pid", "echo started", "sleep 30")
    started = time.monotonic()

    outcome = run_shell(task, make_context(timeout_seconds=1.0), workdir=tmp_path)

    assert time.monotonic() - started < 3.0
    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert "started\n" in outcome.log
    assert "ERR_TASK_TIMED_OUT" in outcome.log
    assert process_gone(int((tmp_path / "shell.pid").read_text()))
    assert process_gone(int((tmp_path / "child.pid").read_text()))


def test_after_script_is_skipped_after_a_timeout(tmp_path: Path) -> None:
    task = shell_task("sleep 30", after_script=["touch cleaned"])

    outcome = run_shell(task, make_context(timeout_seconds=0.5), workdir=tmp_path)

    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert not (tmp_path / "cleaned").exists()
    assert "after_script skipped" in outcome.log


def test_background_children_are_killed_when_the_script_ends(tmp_path: Path) -> None:
    started = time.monotonic()

    task = shell_task("sleep 30 & echo $! > child.pid", "echo done")

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "0"
    assert time.monotonic() - started < 3.0
    assert process_gone(int((tmp_path / "child.pid").read_text()))


def test_a_script_that_closes_its_output_is_still_waited_for(tmp_path: Path) -> None:
    outcome = run_shell(
        shell_task("exec >/dev/null 2>&1", "sleep 0.5", "touch finished", "exit 4"),
        make_context(),
        workdir=tmp_path,
    )

    assert outcome.exit_code == "4"
    assert (tmp_path / "finished").exists()


def test_cancellation_is_polled_and_kills_the_group(tmp_path: Path) -> None:
    cancel_at = time.monotonic() + 1.2
    ctx = make_context(timeout_seconds=30, is_cancelled=lambda: time.monotonic() >= cancel_at)
    task = shell_task("sleep 30 & echo $! > child.pid", "sleep 30")

    outcome = run_shell(task, ctx, workdir=tmp_path)

    assert time.monotonic() - cancel_at < 2.0
    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_TASK_CANCELLED
    assert process_gone(int((tmp_path / "child.pid").read_text()))


def test_death_by_signal_is_reported_like_a_shell(tmp_path: Path) -> None:
    outcome = run_shell(shell_task("kill -TERM $$"), make_context(), workdir=tmp_path)

    assert outcome.exit_code == "143"


def test_runs_in_the_given_fresh_workdir_and_leaves_no_script_there(tmp_path: Path) -> None:
    ctx = make_context()
    first = fresh_workdir(ctx, tmp_path / "work")
    second = fresh_workdir(ctx, tmp_path / "work")

    outcome = run_shell(shell_task("pwd", "ls -A | wc -l"), ctx, workdir=first)

    assert first != second
    assert first.parent == second.parent == tmp_path / "work"
    assert list(second.iterdir()) == []
    assert f"{first.resolve()}\n" in outcome.log
    assert "\n0\n" in outcome.log
    assert list(first.iterdir()) == []


def test_missing_workdir_is_a_start_error(tmp_path: Path) -> None:
    outcome = run_shell(shell_task("echo hi"), make_context(), workdir=tmp_path / "absent")

    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_SHELL_START


def test_build_script_shapes() -> None:
    stop = build_script(["echo a", "", "  "])
    keep_going = build_script(["echo a"], stop_on_error=False)

    assert stop.startswith("set -e\n")
    assert stop.count("echo a") == 2  # echoed then run; blank entries dropped
    assert 'exit "$__formica_first_failure"' in keep_going
