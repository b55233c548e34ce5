"""Tenant isolation: a job definition's templates render within a bounded budget.

Definitions are untrusted, and their templates render at upload (to validate them) and again for every
attempt. Each bomb below used to stall the process or fill its memory (a nested range ran for over
30 s, ``center(1000000000)`` took 19 s and 4.6 GB, the others built 100 MB strings). Now each is
refused WHILE it renders (formica.jobs.budget), before it allocates, with a DefinitionError naming
the task, the line and the limit: the API answers 400, and at run time the job ends
ERR_INVALID_DEFINITION.

Times are bounded relative to a plain render measured in this process (compile included), never
in absolute seconds; memory by tracemalloc's peak.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.jobs import DefinitionError, budget, load_definition, parse_definition
from formica.jobs.templates import _environment, render, runtime_context, validation_context

from tests.integration.api import conftest as api_fixtures
from tests.integration.api.conftest import ApiWorld
from tests.security.template_budget import (
    BOMB_LINE,
    PLAIN,
    RATIO,
    SLACK_SECONDS,
    assert_refused_upload,
    definition,
    refused,
)
from tests.workflow import conftest as walk_fixtures
from tests.workflow.conftest import Walk

aws, ddb, world = api_fixtures.aws, api_fixtures.ddb, api_fixtures.world  # the API's moto fixtures
walk = walk_fixtures.walk  # the state machine under moto, every Lambda in-process

# -- the bombs found, each refused -----------------------------------------------------------------

S = '{% set s = "x" * 100000 %}'  # 100,000 characters: within every limit on its own
NS = '{% set ns = namespace(s="x", l=[1]) %}'

BOMBS = [
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "MAX_RANGE_ITEMS",
        id="nested-range",
    ),
    pytest.param(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "MAX_LOOP_ITEMS",
        id="nested-range-within-the-range-limit",
    ),
    pytest.param('{{ "x"|center(1000000000) }}', "MAX_VALUE_CHARS", id="center"),
    pytest.param('{{ "a\\nb"|indent(100000000) }}', "MAX_VALUE_CHARS", id="indent-width"),
    pytest.param('{{ ("a\\n" * 1000)|indent(" " * 100000) }}', "MAX_VALUE_CHARS", id="indent-string"),
    pytest.param("{{ '%0100000000d' % 1 }}", "MAX_VALUE_CHARS", id="percent-width"),
    pytest.param("{{ '%*d' % (100000000, 1) }}", "MAX_VALUE_CHARS", id="percent-star-width"),
    pytest.param("{{ '%.100000000f' % 1.0 }}", "MAX_VALUE_CHARS", id="percent-precision"),
    pytest.param('{{ "%0100000000d"|format(1) }}', "MAX_VALUE_CHARS", id="format-filter"),
    pytest.param("{{ '{:>100000000}'.format(1) }}", "MAX_VALUE_CHARS", id="str-format-width"),
    pytest.param("{{ '{:.100000000f}'.format(1.0) }}", "MAX_VALUE_CHARS", id="str-format-precision"),
    pytest.param('{{ "{0:>{1}}".format(1, 100000000) }}', "MAX_VALUE_CHARS", id="str-format-nested-width"),
    pytest.param("{{ '{a:>100000000}'.format_map({'a': 1}) }}", "MAX_VALUE_CHARS", id="format-map"),
    pytest.param('{{ printf "%0100000000d" 1 }}', "MAX_VALUE_CHARS", id="go-printf"),
    pytest.param('{{ (["x" * 100000] * 1000)|join }}', "MAX_VALUE_CHARS", id="join-of-repeated-list"),
    pytest.param(S + "{{ range(1000)|join(s) }}", "MAX_VALUE_CHARS", id="join-separator"),
    pytest.param(S + '{{ s.join(range(1000)|map("string")) }}', "MAX_VALUE_CHARS", id="str-join"),
    pytest.param(
        NS + "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "MAX_VALUE_CHARS",
        id="tilde-doubling-in-a-loop",
    ),
    pytest.param(
        NS + "{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        "MAX_VALUE_CHARS",
        id="plus-doubling-in-a-loop",
    ),
    pytest.param(
        NS + "{% for i in range(40) %}{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}"
        "{{ ns.s|length }}",
        "MAX_VALUE_CHARS",
        id="block-set-doubling",
    ),
    pytest.param(
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}"
        '{{ d("x", 40) }}',
        "MAX_VALUE_CHARS",
        id="tilde-doubling-in-a-macro",
    ),
    pytest.param(
        NS + "{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
        "MAX_VALUE_CHARS",
        id="list-doubling",
    ),
    pytest.param(
        "{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}{{ l|length }}",
        "MAX_VALUE_CHARS",
        id="list-extend-doubling",
    ),
    pytest.param(
        S + NS + "{% for i in range(10000) %}{% set ns.l = [ns.l, s ~ i] %}{% endfor %}x",
        "MAX_VALUE_CHARS",
        id="strings-kept-in-a-namespace",
    ),
    pytest.param(
        "{{ range Iterate 1000 }}{{ range Iterate 1000 }}{{ range Iterate 1000 }}"
        "x{{ end }}{{ end }}{{ end }}",
        "MAX_ITERATE_TOTAL",
        id="nested-iterate",
    ),
    pytest.param("{{ range Iterate 1001 }}x{{ end }}", "MAX_ITERATE", id="iterate"),
    pytest.param(
        "{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}", "MAX_RENDERED_CHARS", id="output"
    ),
]


@pytest.mark.parametrize(("bomb", "limit"), BOMBS)
def test_a_bomb_is_refused_at_upload_naming_the_task_and_the_limit(
    bomb: str, limit: str, plain_seconds: float
) -> None:
    assert_refused_upload(bomb, limit, plain_seconds)


# -- every size-growing filter, method and operator ------------------------------------------------


@dataclass(frozen=True)
class Growing:
    bomb: str
    limit: str = "MAX_VALUE_CHARS"


def grows(bomb: str, id: str, limit: str = "MAX_VALUE_CHARS") -> Any:
    return pytest.param(Growing(bomb, limit), id=id)


GROWING = [
    grows("{{ 'x'.center(1000000000) }}", id="str.center"),
    grows("{{ 'x'.ljust(1000000000) }}", id="str.ljust"),
    grows("{{ 'x'.rjust(1000000000) }}", id="str.rjust"),
    grows("{{ 'x'.zfill(1000000000) }}", id="str.zfill"),
    grows("{{ ('\\t' * 1000).expandtabs(1000000) }}", id="str.expandtabs"),
    grows(S + "{{ s|replace('x', s) }}", id="filter-replace"),
    grows(S + "{{ s.replace('', s) }}", id="str.replace"),
    grows(S + "{{ s.translate({120: s}) }}", id="str.translate"),
    grows("{{ (1).to_bytes(1000000000, 'big')|length }}", id="int.to_bytes"),
    grows(S + "{{ (s ~ ' ')|wordwrap(1, wrapstring=s) }}", id="filter-wordwrap"),
    grows("{{ [1]|batch(1000000000, 'x')|list|length }}", id="filter-batch"),
    grows("{{ [1]|slice(1000000000)|list|length }}", id="filter-slice"),
    grows(S + "{{ [[s], [s], [s], [s], [s], [s], [s], [s], [s], [s], [s]]|sum(start=[]) }}", id="filter-sum"),
    grows("{{ (range(1000)|list)|tojson(indent=100000) }}", id="filter-tojson"),
    grows(
        S + "{{ 'x'|truncate(300000, end=s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s) }}", id="filter-truncate"
    ),
    grows("{{ lipsum(100000)|length }}", id="lipsum"),
    grows(S + "{{ [s, s, s, s, s, s, s, s, s, s, s]|string }}", id="filter-string-of-a-list"),
    grows(S + "{{ [s, s, s, s, s, s, s, s, s, s, s] }}", id="printing-a-list"),
    grows(S + "{{ [s, s, s, s, s, s, s, s, s, s, s]|join }}", id="filter-join-of-a-list"),
    grows(S + "{{ '%s' % ([s, s, s, s, s, s, s, s, s, s, s],) }}", id="percent-of-a-list"),
    grows(S + "{{ '{}'.format([s, s, s, s, s, s, s, s, s, s, s]) }}", id="str-format-of-a-list"),
    grows(S + "{{ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s }}", id="tilde"),
    grows("{{ [1, 2] * 1000000 }}", id="list-repetition", limit="MAX_REPEAT_CHARS"),
    grows("{{ 'ab' * 1000000 }}", id="str-repetition", limit="MAX_REPEAT_CHARS"),
    grows("{{ ('x'.encode() * 1000000)|length }}", id="bytes-repetition", limit="MAX_REPEAT_CHARS"),
    grows(S + "{{ ([s] * 100)|length }}", id="list-repetition-of-a-long-string"),
    grows(
        NS
        + "{% set ns.n = 3 %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n % 7 }}",
        id="int-squaring",
        limit="MAX_INT_BITS",
    ),
    grows("{{ (10 ** 64) ** 64 % 7 }}", id="int-power", limit="MAX_INT_BITS"),
    grows("{{ 2 ** 1000000 }}", id="exponent", limit="MAX_EXPONENT"),
    grows("{{ range(10 ** 30)|length }}", id="range-too-long-to-count", limit="MAX_RANGE_ITEMS"),
]


@pytest.mark.parametrize("growing", GROWING)
def test_every_size_growing_operation_is_refused_before_it_allocates(
    growing: Growing, plain_seconds: float
) -> None:
    assert_refused_upload(growing.bomb, growing.limit, plain_seconds)


def test_a_slow_template_within_every_size_limit_meets_the_deadline(
    monkeypatch: pytest.MonkeyPatch, plain_seconds: float
) -> None:
    # 100,000 replacements of 100,000 characters: within every size and count, minutes of work.
    monkeypatch.setattr(budget, "MAX_RENDER_SECONDS", 0.2)
    bomb = (
        S + "{% for i in range(10000) %}{% for j in range(10) %}"
        "{{ (s|replace('x', 'yy'))|length }}{% endfor %}{% endfor %}"
    )

    message = assert_refused_upload(bomb, "MAX_RENDER_SECONDS", plain_seconds)

    assert "rendering still running after 0.2 s" in message


def test_nothing_is_evaluated_while_compiling() -> None:
    # jinja2 folded constant expressions at compile time, outside every hook, and pasted the result
    # into the generated Python source: the 19 s and 4.6 GB of "x"|center(1000000000).
    generated = _environment().compile(definition('{{ "x"|center(10000000) }}'), raw=True)

    assert len(generated) < 10_000
    assert render(definition('{{ "x"|center(100000) }}'), validation_context()).count(" ") > 100_000


# -- run time: the same refusal ends the job ERR_INVALID_DEFINITION ----------------------------------

RUNTIME_BOMB = """
job_type: nested-iterate
tasks:
- task_type: first
  method: SHELL
  script:
    - echo first
  on_completed: second
- task_type: second
  method: SHELL
  script:
    - echo second
    {{ if .Count }}{{ $n := .Count }}{{ range $i := Iterate $n }}{{ range $j := Iterate $n }}
    - echo {{ $i }} {{ $j }}
    {{ end }}{{ end }}{{ end }}
"""


def test_a_bomb_that_validates_with_its_defaults_is_refused_by_each_run_time_render(
    plain_seconds: float,
) -> None:
    parse_definition(RUNTIME_BOMB)  # no Count at upload: no loop
    context = runtime_context(job_id="r", job_type="nested-iterate", org="o", params={"Count": "1000"})

    error, elapsed = refused(lambda: load_definition(RUNTIME_BOMB, context))

    (problem,) = error.problems
    assert (problem.line, problem.task_type) == (13, "second")
    assert f"over the limit {budget.describe('MAX_ITERATE_TOTAL')}" in problem.message
    assert elapsed < RATIO * plain_seconds + SLACK_SECONDS


def test_at_run_time_the_job_ends_err_invalid_definition_naming_the_task_and_the_limit(
    request: pytest.FixtureRequest,
) -> None:
    harness: Walk = request.getfixturevalue("walk")
    harness.upload(RUNTIME_BOMB)

    done = harness.wait(harness.submit("nested-iterate", {"Count": "1000"}))

    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_INVALID_DEFINITION")
    message = done.error_message or ""
    assert message.startswith('line 13, task "second": template refused: Iterate produced'), message
    assert "over the limit MAX_ITERATE_TOTAL (10,000 items)" in message


# -- the API: 400, as for any invalid definition ----------------------------------------------------


def test_the_api_answers_400_naming_the_task_and_the_limit(request: pytest.FixtureRequest) -> None:
    api: ApiWorld = request.getfixturevalue("world")

    response = api.call(
        "POST",
        "/api/jobs/definitions",
        body=definition('{{ "x"|center(1000000000) }}'),
        headers={"Content-Type": "application/yaml"},
    )

    assert response.status == 400
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    (detail,) = body["details"]
    assert (detail["line"], detail["task_type"]) == (BOMB_LINE, "bomb")
    assert "over the limit MAX_VALUE_CHARS (1,048,576 characters)" in detail["message"]
    assert api.call("GET", "/api/jobs/definitions/bombs").status == 404


# -- no lock: one render over its budget holds up no other render ----------------------------------


def test_a_bomb_rendering_holds_up_no_other_render(
    monkeypatch: pytest.MonkeyPatch, plain_seconds: float
) -> None:
    monkeypatch.setattr(budget, "MAX_RENDER_SECONDS", 1.0)
    bomb = definition(S + "{% for i in range(10000) %}{{ (s|replace('x', 'yy'))|length }}{% endfor %}")
    started = threading.Event()
    outcome: list[BaseException] = []

    def render_the_bomb() -> None:
        started.set()
        try:
            parse_definition(bomb)
        except DefinitionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=render_the_bomb)
    thread.start()
    started.wait()
    time.sleep(0.05)
    worst = 0.0
    try:
        for _ in range(5):
            begun = time.perf_counter()
            parse_definition(PLAIN.format(nonce=uuid.uuid4().hex))
            worst = max(worst, time.perf_counter() - begun)
        bomb_still_rendering = thread.is_alive()
    finally:
        thread.join()

    assert bomb_still_rendering  # the plain renders ran while the bomb rendered, not after it
    assert worst < RATIO * plain_seconds + SLACK_SECONDS
    assert outcome and "MAX_RENDER_SECONDS" in str(outcome[0])


# -- limits at their edge pass ---------------------------------------------------------------------


def rendered(template: str) -> str:
    return render(template, validation_context())


def refuses(template: str, limit: str) -> None:
    with pytest.raises(DefinitionError, match=f"over the limit {limit} "):
        rendered(template)


def test_a_range_of_exactly_the_limit_renders() -> None:
    cap = budget.MAX_RANGE_ITEMS
    assert rendered(f"{{{{ range({cap})|length }}}}") == str(cap)
    assert rendered(f"{{% for i in range({cap}) %}}{{% endfor %}}ok") == "ok"
    refuses(f"{{{{ range({cap + 1})|length }}}}", "MAX_RANGE_ITEMS")


def test_loops_visiting_exactly_the_limit_render() -> None:
    outer = budget.MAX_RANGE_ITEMS
    inner = budget.MAX_LOOP_ITEMS // outer - 1
    assert outer + outer * inner == budget.MAX_LOOP_ITEMS
    loops = "{{% for i in range({outer}) %}}{{% for j in range({inner}) %}}{{% endfor %}}{{% endfor %}}ok"

    assert rendered(loops.format(outer=outer, inner=inner)) == "ok"
    refuses(loops.format(outer=outer, inner=inner + 1), "MAX_LOOP_ITEMS")


def test_iterate_at_its_limits_renders() -> None:
    assert rendered(f"{{{{ len (Iterate {budget.MAX_ITERATE}) }}}}") == str(budget.MAX_ITERATE)
    outer = budget.MAX_ITERATE_TOTAL // budget.MAX_ITERATE
    inner = (budget.MAX_ITERATE_TOTAL - outer) // outer
    assert outer + outer * inner == budget.MAX_ITERATE_TOTAL
    nested = "{{{{ range Iterate {outer} }}}}{{{{ range Iterate {inner} }}}}{{{{ end }}}}{{{{ end }}}}ok"

    assert rendered(nested.format(outer=outer, inner=inner)) == "ok"
    refuses(nested.format(outer=outer, inner=inner + 1), "MAX_ITERATE_TOTAL")


def test_values_of_exactly_the_limit_render() -> None:
    cap = budget.MAX_VALUE_CHARS
    assert rendered(f"{{{{ 'x'|center({cap})|length }}}}") == str(cap)
    assert rendered(f"{{{{ '{{:>{cap}}}'.format(1)|length }}}}") == str(cap)
    assert rendered(f"{{{{ ('%{cap}d' % 1)|length }}}}") == str(cap)
    refuses(f"{{{{ 'x'|center({cap + 1})|length }}}}", "MAX_VALUE_CHARS")
    half = "{% set h = 'x' * " + str(cap // 16) + " %}{% set q = h ~ h ~ h ~ h %}{% set s = q ~ q ~ q ~ q %}"
    assert rendered(half + "{{ s|length }}") == str(cap // 4 * 4)


def test_repetition_of_exactly_the_limit_renders() -> None:
    cap = budget.MAX_REPEAT_CHARS
    assert rendered(f"{{{{ ('x' * {cap})|length }}}}") == str(cap)
    refuses(f"{{{{ ('x' * {cap + 1})|length }}}}", "MAX_REPEAT_CHARS")


def test_numbers_at_their_limits_render() -> None:
    assert rendered("{{ 2 ** 64 }}") == str(2**64)
    refuses("{{ 2 ** 65 }}", "MAX_EXPONENT")
    assert rendered("{{ (2 ** 63) ** 64 % 7 }}") == str((2**63) ** 64 % 7)  # 64 x 64 bits: the limit
    refuses("{{ (2 ** 64) ** 64 % 7 }}", "MAX_INT_BITS")


def test_output_of_exactly_the_limit_renders() -> None:
    kib = 1024
    lines = budget.MAX_RENDERED_CHARS // kib
    full = f"{{% for i in range({lines}) %}}{{{{ 'x' * {kib} }}}}{{% endfor %}}"

    assert len(rendered(full)) == budget.MAX_RENDERED_CHARS
    refuses(full + "!", "MAX_RENDERED_CHARS")


def test_every_formicary_style_template_still_renders_within_the_budget() -> None:
    # the corpus is checked by tests/unit/test_corpus.py; here the seed job's forms, at run time
    context = runtime_context(job_id="r", job_type="t", org="o", params={"Name": "n"}, job_elapsed_secs=9)
    job = load_definition(PLAIN.format(nonce="x"), context)
    assert [task.task_type for task in job.tasks] == ["first", "second"]
    assert len(job.task("second").script) == 3
