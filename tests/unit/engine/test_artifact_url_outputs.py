"""ArtifactURL_<n>: the download URLs of a task's artifacts, added to its outputs within the bounds."""

from __future__ import annotations

from formica.engine.outputs import artifact_url_outputs
from formica.jobs.limits import OUTPUT_VALUE_MAX_BYTES, OUTPUTS_PER_TASK_MAX, TASK_OUTPUTS_MAX_BYTES


def test_urls_are_numbered_from_one_in_upload_order_after_the_tasks_own_outputs() -> None:
    published = artifact_url_outputs({"version": "1.2"}, ["http://s3/a", "http://s3/b"], 2)

    assert published.outputs == {
        "version": "1.2",
        "ArtifactURL_1": "http://s3/a",
        "ArtifactURL_2": "http://s3/b",
    }
    assert published.notes == []


def test_an_artifact_url_the_task_wrote_itself_wins() -> None:
    published = artifact_url_outputs({"ArtifactURL_1": "s3://mine"}, ["http://s3/a", "http://s3/b"], 2)

    assert published.outputs == {"ArtifactURL_1": "s3://mine", "ArtifactURL_2": "http://s3/b"}


def test_urls_past_the_outputs_per_task_are_named_in_one_note() -> None:
    own = {f"o{i}": "x" for i in range(OUTPUTS_PER_TASK_MAX - 2)}
    urls = [f"http://s3/{i}" for i in range(OUTPUTS_PER_TASK_MAX)]

    published = artifact_url_outputs(own, urls, 40)

    assert len(published.outputs) == OUTPUTS_PER_TASK_MAX
    assert published.outputs["ArtifactURL_2"] == "http://s3/1"
    assert "ArtifactURL_3" not in published.outputs
    assert published.notes == [
        f"ArtifactURL_3..ArtifactURL_40 not published: a task publishes at most {OUTPUTS_PER_TASK_MAX} "
        "outputs (OUTPUTS_PER_TASK_MAX)"
    ]


def test_urls_past_the_task_outputs_bytes_are_dropped_with_the_reason() -> None:
    url = "http://s3/" + "k" * 3000
    count = TASK_OUTPUTS_MAX_BYTES // 3000 + 2

    published = artifact_url_outputs({}, [url] * count, count)

    assert 0 < len(published.outputs) < count
    [note] = published.notes
    first_dropped = len(published.outputs) + 1
    assert note.startswith(f"ArtifactURL_{first_dropped}..") and "(TASK_OUTPUTS_MAX_BYTES)" in note


def test_a_url_over_the_value_limit_is_not_published() -> None:
    published = artifact_url_outputs({}, ["http://s3/" + "k" * OUTPUT_VALUE_MAX_BYTES], 1)

    assert published.outputs == {}
    assert published.notes == [
        f"ArtifactURL_1 not published: the URL is over {OUTPUT_VALUE_MAX_BYTES} bytes "
        "(OUTPUT_VALUE_MAX_BYTES)"
    ]
