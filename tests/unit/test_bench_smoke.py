"""The benchmarks import, and their pure helpers compute right. No timing is asserted here."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from formica.jobs import parse_definition

from bench import common, cost, naive_loop
from bench.cold_start import ImportEntry, ImportProbe, heavy_imports, parse_importtime, top_level_seconds
from bench.language import generated_definition
from bench.walk_local import chain_definition, linear_fit

MODULES = [
    "bench.run",
    "bench.common",
    "bench.cold_start",
    "bench.language",
    "bench.walk_local",
    "bench.api_load",
    "bench.cost",
    "bench.naive_loop",
    "bench.devserver",
    "bench.bare_handler",
    "bench.floor_handler",
    "bench.local_runs",
    "bench.forks",
    "bench.package_sizes",
]


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_modules_import(name: str) -> None:
    module = importlib.import_module(name)
    helpers = ("common", "naive_loop", "devserver", "bare_handler", "floor_handler", "local_runs", "run")
    if name.removeprefix("bench.") not in helpers:
        assert callable(module.run)


def test_importtime_output_is_summed_over_top_level_imports_after_the_mark() -> None:
    # Given -X importtime output: start-up imports, the mark, then a nested import tree
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       900 |       2600 | site",
            "@@formica-bench-mark@@",
            "import time:       100 |        100 |     botocore.utils",
            "import time:       200 |        300 |   boto3",
            "import time:        50 |        400 | functions.x.app",
            "import time:        70 |         70 | json",
        ]
    )
    # When it is parsed
    entries = parse_importtime(stderr)
    # Then only what followed the mark counts, and nested times are not added twice
    assert [entry.depth for entry in entries] == [2, 1, 0, 0]
    assert top_level_seconds(entries) == pytest.approx(470 / 1e6)
    assert heavy_imports(entries) == ["boto3", "botocore"]


def test_import_probe_is_clean_only_without_clients_sockets_or_reads() -> None:
    assert ImportProbe(0, 0, 0, ()).clean
    assert not ImportProbe(1, 1, 0, ()).clean
    assert not ImportProbe(0, 0, 0, ("FORMICA_TABLE_NAME",)).clean


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert common.percentile(values, 0.50) == 50.0
    assert common.percentile(values, 0.99) == 99.0
    assert common.percentile([3.0], 0.99) == 3.0


def test_figure_ratio_and_table() -> None:
    figure = common.Figure("b", "f", 30.0, "ms", baseline="base", baseline_value=10.0, note="a|b")
    assert figure.ratio == pytest.approx(3.0)
    assert common.Figure("b", "f", None, "ms", baseline_value=10.0).ratio is None
    rendered = common.table([figure])
    assert "| b | f | 30 | ms | base (10) | 3.00x | a/b |" in rendered


def test_readme_block_is_replaced_between_markers_and_the_rest_is_kept() -> None:
    block = f"{common.FIGURES_START}\nold\n{common.FIGURES_END}"
    text = f"# Title\n\nintro\n\n{block}\n\n## States per attempt\nD's\n"
    replaced = common.replace_block(text, f"{common.FIGURES_START}\nnew\n{common.FIGURES_END}")
    assert "old" not in replaced
    assert "new" in replaced
    assert replaced.startswith("# Title\n\nintro\n\n")
    assert replaced.endswith("## States per attempt\nD's\n")
    appended = common.replace_block("# Title\n", "BLOCK")
    assert appended == "# Title\n\nBLOCK\n"


def test_generated_definitions_are_valid_jobs_of_the_asked_size() -> None:
    assert len(parse_definition(generated_definition(10)).tasks) == 10
    assert len(parse_definition(generated_definition(100)).tasks) == 100
    assert len(parse_definition(chain_definition(3)).tasks) == 3


def test_linear_fit_recovers_a_line() -> None:
    intercept, slope = linear_fit([(1, 2.5), (10, 7.0), (100, 52.0)])
    assert intercept == pytest.approx(2.0)
    assert slope == pytest.approx(0.5)


DESIGN = cost.DesignCounts(
    label="test",
    start_states=2,
    end_states=2,
    per_attempt={"http": 2, "shell": 2, "container": 3},
    per_poll_extra=1,
    events_per_poll=9,
    start_invocations=(cost.Invocation("advance"),),
    attempt_invocations={
        "http": (cost.Invocation("http_task"),),
        "shell": (cost.Invocation("shell_task"),),
        "container": (
            cost.Invocation("launch"),
            cost.Invocation("advance"),
            cost.Invocation("container_events"),
        ),
    },
)


def test_transitions_of_a_sensor_job() -> None:
    # 10 polls + 1 final HTTP attempt, 2 containers: 2 + 11*2 + 10*1 + 2*3 + 2
    assert cost.transitions(DESIGN, cost.sensor_job(10)) == 42


def test_job_cost_adds_transitions_requests_and_gb_seconds() -> None:
    job = cost.chain_job(10, "shell")
    durations = {"advance": 0.1, "shell_task": 0.5}
    memory = {"advance": 512, "shell_task": 1024}
    result = cost.job_cost(DESIGN, job, durations, memory)
    assert result.transitions == 2 + 10 * 2 + 2
    assert result.invocations == 11
    assert result.states_dollars == pytest.approx(24 * 0.025 / 1000)
    lambda_dollars = 11 * 0.20 / 1e6 + (0.5 * 0.1 + 10 * 1.0 * 0.5) * 0.0000133334
    assert result.lambda_dollars == pytest.approx(lambda_dollars)
    assert result.per_thousand == pytest.approx(1000 * (24 * 0.025 / 1000 + lambda_dollars))


def test_billed_duration_rounds_up_to_the_millisecond() -> None:
    assert cost.billed_seconds(0.0101) == pytest.approx(0.011)
    assert cost.billed_seconds(0.010) == pytest.approx(0.010)


def test_polls_per_execution() -> None:
    assert cost.polls_per_execution(20_000, 9) == 2222
    assert cost.polls_per_execution(20_000, 9, reserve_events=2) == 2222
    assert cost.polls_per_execution(20_000, 10, reserve_events=10) == 1999
    with pytest.raises(ValueError):
        cost.polls_per_execution(20_000, 0)


def test_cdk_memory_sizes_follow_the_constructs() -> None:
    sizes = cost.cdk_memory_sizes()
    if not sizes:
        pytest.skip("no CDK constructs in this tree")
    assert all(size >= 128 for size in sizes.values())


def test_naive_script_and_history_count() -> None:
    assert naive_loop.attempt_script(2, 3) == ["POLL", "POLL", "NEXT", "NEXT", "DONE"]
    events: list[dict[str, Any]] = [
        {"type": "ExecutionStarted"},
        {"type": "TaskStateEntered"},
        {"type": "TaskScheduled", "taskScheduledEventDetails": {"resourceType": "lambda"}},
        {"type": "TaskStateExited"},
        {"type": "ChoiceStateEntered"},
        {"type": "SucceedStateEntered"},
    ]
    assert naive_loop.count_history(events) == naive_loop.HistoryCount(
        events=6, states_entered=3, lambda_invocations=1
    )


def test_import_entry_is_plain_data() -> None:
    assert ImportEntry("x", 1, 2, 0) == ImportEntry("x", 1, 2, 0)


def test_a_partial_run_replaces_only_its_benchmarks_figures() -> None:
    old = [
        common.Figure("states", "per attempt", 2.0, "states"),
        common.Figure("forks", "per fork", 4.0, "states"),
        common.Figure("forks", "per await", 8.0, "states"),
        common.Figure("approvals", "per approval", 2.0, "states"),
    ]
    text = (
        "# Title\n\n"
        + common.figures_block(old, 100.0, ["states: how", "forks: old note"])
        + "\n\n## After\n"
    )
    rerun = [common.Figure("forks", "per fork", 5.0, "states")]

    block = common.merged_block(text, rerun, 7.0, ["forks: new note"], ["forks"])

    rows = [line for line in block.splitlines() if line.startswith("| ") and "benchmark |" not in line]
    assert [row.split("|")[1:3] for row in rows] == [
        [" states ", " per attempt "],
        [" forks ", " per fork "],
        [" approvals ", " per approval "],
    ]
    assert "| forks | per fork | 5 |" in block
    assert "- states: how" in block and "- forks: new note" in block and "old note" not in block
    assert "the whole run took 100 s" in block and ": forks (7 s)." in block
    # A benchmark without rows before goes at the end; the rest of the README is kept
    added = common.merged_block(text, [common.Figure("cost", "$", 1.0, "$")], 3.0, [], ["cost"])
    added_rows = [line for line in added.splitlines() if line.startswith("| ") and "benchmark |" not in line]
    assert [row.split("|")[1].strip() for row in added_rows] == [
        "states",
        "forks",
        "forks",
        "approvals",
        "cost",
    ]
    written = common.replace_block(text, block)
    assert written.startswith("# Title\n\n") and written.endswith("\n\n## After\n")
