"""`make run`'s demo with --once, and the packaged copy of the brief's sensor job."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from formica.cli.demo import SEED_HOST, extract_seed_yaml, local_yaml

from tests.e2e.devserver import SHARED_SEED, free_port, pids_running, user_env


@pytest.mark.skipif(
    not SHARED_SEED.is_file(), reason="../shared/seed-sensor-job.md is absent (the brief lives there)"
)
def test_packaged_sensor_job_is_the_briefs_yaml_byte_for_byte() -> None:
    brief = extract_seed_yaml(SHARED_SEED.read_text(encoding="utf-8"))
    packaged = resources.files("formica.local").joinpath("sensor-job.yaml").read_text(encoding="utf-8")
    assert packaged == brief


def test_only_the_host_is_replaced() -> None:
    packaged = resources.files("formica.local").joinpath("sensor-job.yaml").read_text(encoding="utf-8")
    replaced = local_yaml(packaged, "http://127.0.0.1:9999")
    assert SEED_HOST not in replaced
    assert replaced.replace("http://127.0.0.1:9999", SEED_HOST) == packaged


def test_demo_once_runs_the_sensor_job_to_a_final_state(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "formica.cli.demo", "--once", "--port", str(port)],
        capture_output=True,
        text=True,
        env=user_env(),
        cwd=tmp_path,
        timeout=280,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"formica dev is up at http://127.0.0.1:{port}" in out
    # Progress of the polling task: a 404 (EXECUTING) first, then the 200 from /todos/1
    assert re.search(r"first\s+EXECUTING\s+attempt 1\s+exit 404", out), out
    assert re.search(r"first\s+COMPLETED\s+attempt \d+\s+exit 200", out), out
    final = re.search(r"final state: (\w+)", out)
    assert final is not None, out
    assert final.group(1) in ("COMPLETED", "FAILED")
    if final.group(1) == "COMPLETED":
        artifact = re.search(r"artifact third/date.txt -> (\S+)", out)
        assert artifact is not None, out
        assert Path(artifact.group(1)).read_text(encoding="utf-8").strip()
    # The folder to cd into (README quick start, step 1) holds the job file the curl commands upload
    folder = re.search(r"^  cd (\S+)$", out, flags=re.M)
    assert folder is not None, out
    uploaded = (Path(folder.group(1)) / "sensor-job.yaml").read_text(encoding="utf-8")
    assert "job_type: sensor-job" in uploaded and SEED_HOST not in uploaded
    assert re.search(r"^  export TOKEN=fmc_\S+$", out, flags=re.M), out
    # The brief's curl commands are printed as written
    assert "--data-binary @sensor-job.yaml $SERVER/api/jobs/definitions" in out
    assert (
        """--data '{"job_type": "sensor-job", "params": { "Key": "Value" } }' $SERVER/jobs/requests""" in out
    )
    # make run shows where formica dev writes notify.email messages (and formica dev made it)
    outbox = re.search(r"^  email outbox \(notify.email, one .eml file each\): (\S+)$", out, flags=re.M)
    assert outbox is not None, out
    assert Path(outbox.group(1)).is_dir() and Path(outbox.group(1)).parent == Path(folder.group(1))
    # Nothing is left running on the port
    assert not pids_running(f"--port {port}")
