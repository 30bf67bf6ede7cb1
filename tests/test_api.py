"""The REST API of ``aifabric ui`` (aifabric.web): each endpoint answers exactly what the CLI
prints with ``--json`` for the same scenario (the CLI is the truth), jobs run, report and
cancel, and the safety rules hold: 400/413/422 JSON errors, files confined to the shipped
traces and examples, loopback binding by default."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from aifabric.web.app import COMMAND_PATHS, create_app
from aifabric.web.safety import MAX_BODY_BYTES, bind_address

from .cli_helpers import run_json

ROOT = Path(__file__).resolve().parents[1]
WALL = ("wall_s", "wall_by_phase_s")


def _drop_wall(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_wall(v) for k, v in obj.items() if k not in WALL}
    if isinstance(obj, list):
        return [_drop_wall(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(create_app(time_limit_s=120)) as c:
        yield c


SERVE = {"seed": 3, "model": "llama3-8b", "gpu": "h100-sxm",
         "workload": {"source": "synthetic", "rate_rps": 4, "num_requests": 120},
         "cluster": {"mode": "colocated", "instances": 2, "tp": 1}}  # fmt: skip
CASES = [
    ("plan", {"gpus": 256, "design": "clos", "oversubscription": 2}, []),
    (
        "traffic train",
        {"model": "llama3-8b", "seq_len": 4096, "global_batch": 256, "tp": 2, "pp": 2, "dp": 4},
        [],
    ),
    (
        "simulate train",
        {
            "model": "llama3-8b",
            "gpus": 64,
            "tp": 8,
            "pp": 1,
            "dp": 8,
            "seq_len": 4096,
            "global_batch": 64,
            "network": "analytic",
        },
        [],
    ),
    ("simulate serve", SERVE, []),
    (
        "simulate collective",
        {"gpus": 64, "op": "all_gather", "size": "64MiB"},
        ["--op", "all_gather", "--size", "64MiB"],
    ),
]


@pytest.mark.parametrize("command,scenario,flags", CASES, ids=[c[0] for c in CASES])
def test_each_endpoint_answers_the_clis_json(
    command: str, scenario: dict[str, Any], flags: list[str], client: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    response = client.post(f"/api/v1/{COMMAND_PATHS[command]}", json=scenario)
    assert response.status_code == 200, response.text
    file_keys = {k: v for k, v in scenario.items() if k not in ("op", "size")}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(file_keys if flags else scenario))
    cli = run_json(capsys, *command.split(), "-f", str(path), *flags, "--json")
    assert _drop_wall(response.json()) == _drop_wall(cli)


def test_simulate_cluster_endpoint_answers_the_clis_json(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    example = ROOT / "examples" / "cluster" / "converged.yaml"
    scenario = yaml.safe_load(example.read_text())
    scenario["duration"] = "120s"
    response = client.post("/api/v1/simulate/cluster", json=scenario)
    assert response.status_code == 200, response.text
    path = ROOT / "examples" / "cluster" / "_api_test.yaml"  # workload files resolve there
    try:
        path.write_text(yaml.safe_dump(scenario))
        cli = run_json(capsys, "simulate", "cluster", "-f", str(path), "--json")
    finally:
        path.unlink()
    assert _drop_wall(response.json()) == _drop_wall(cli)


def _wait(client: Any, job_id: str, timeout: float = 120) -> dict[str, Any]:
    end = time.time() + timeout
    while time.time() < end:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


def test_a_job_runs_yaml_with_overrides_and_its_result_is_the_endpoints(client: Any) -> None:
    text = yaml.safe_dump({**SERVE, "cluster": {"mode": "colocated", "instances": 1, "tp": 1}})
    response = client.post("/api/v1/jobs", json={"command": "simulate serve",
                                                 "scenario_yaml": text,
                                                 "overrides": {"cluster.instances": 2}})  # fmt: skip
    assert response.status_code == 202
    job = _wait(client, response.json()["id"])
    assert job["status"] == "done" and job["error"] is None
    direct = client.post("/api/v1/simulate/serve", json=SERVE).json()
    assert _drop_wall(job["result"]) == _drop_wall(direct)  # the override made it SERVE
    listed = client.get("/api/v1/jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed] and all("result" not in j for j in listed)
    page = client.get(f"/jobs/{job['id']}")
    assert page.status_code == 200 and 'data-key="ttft_s.p99"' in page.text
    assert client.get(f"/jobs/{job['id']}/report").status_code == 200


def test_a_running_serve_job_reports_progress_and_a_cancel_stops_it(client: Any) -> None:
    long = {**SERVE, "workload": {"source": "synthetic", "rate_rps": 50, "num_requests": 400000}}
    job = client.post("/api/v1/jobs", json={"command": "simulate serve", "scenario": long}).json()
    deadline = time.time() + 60
    while True:  # running, and reporting the share of requests arrived so far
        state = client.get(f"/api/v1/jobs/{job['id']}").json()["progress"]
        if state["state"] == "running" and 0 < (state["fraction"] or 0) < 1:
            break
        assert time.time() < deadline and state["state"] in ("queued", "running")
        time.sleep(0.05)
    cancelled = client.delete(f"/api/v1/jobs/{job['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["result"] is None


def test_a_job_past_its_time_limit_is_stopped_with_a_one_line_reason() -> None:
    long = {**SERVE, "workload": {"source": "synthetic", "rate_rps": 50, "num_requests": 400000}}
    with TestClient(create_app(time_limit_s=0.5)) as c:
        response = c.post("/api/v1/simulate/serve", json=long)
    assert response.status_code == 422
    assert "time limit of 0.5 s" in response.json()["error"]


@pytest.mark.parametrize("body,status,needle", [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 422, "must be a JSON object"),
    (b"\xff\xfe", 400, "not JSON"),
    (json.dumps({"gpus": "many"}).encode(), 422, "gpus"),
    (b" " * (MAX_BODY_BYTES + 1), 413, "over the limit"),
])  # fmt: skip
def test_bad_bodies_get_json_errors(client: Any, body: bytes, status: int, needle: str) -> None:
    response = client.post("/api/v1/plan", content=body,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error and "\n" not in error and "Traceback" not in error


def test_a_chunked_oversized_body_is_refused_before_it_is_all_read(client: Any) -> None:
    def chunks() -> Any:
        for _ in range(3):
            yield b" " * (MAX_BODY_BYTES // 2 + 1)

    response = client.post("/api/v1/plan", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize("trace", ["/etc/passwd", "../../../../etc/passwd", "../../README.md",
                                   "../../traces/missing.jsonl"])  # fmt: skip
def test_files_outside_the_shipped_traces_and_examples_are_refused(client: Any,
                                                                   trace: str) -> None:  # fmt: skip
    scenario = {**SERVE, "workload": {"source": "trace", "trace": trace}}
    response = client.post("/api/v1/simulate/serve", json=scenario)
    assert response.status_code == 422
    assert "traces/ and examples/" in response.json()["error"]


def test_a_shipped_trace_is_read_by_its_examples_relative_name(client: Any) -> None:
    scenario = {**SERVE, "workload": {"source": "trace", "trace_format": "azure",
                                      "trace": "../../traces/azure2023_conv.csv",
                                      "max_requests": 50}}  # fmt: skip
    response = client.post("/api/v1/simulate/serve", json=scenario)
    assert response.status_code == 200, response.text
    assert response.json()["requests"] == 50


def test_commands_and_jobs_are_in_the_openapi_schema_with_the_output_models(client: Any) -> None:
    from aifabric.outputs.schema import COMMANDS

    spec = client.get("/openapi.json").json()
    for command, path in COMMAND_PATHS.items():
        op = spec["paths"][f"/api/v1/{path}"]["post"]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] == COMMANDS[command].__name__
    assert {"post", "get"} <= set(spec["paths"]["/api/v1/jobs"])
    assert {"get", "delete"} <= set(spec["paths"]["/api/v1/jobs/{job_id}"])


def test_unknown_jobs_and_routes_are_json_404s(client: Any) -> None:
    for url in ("/api/v1/jobs/nope", "/nowhere"):
        response = client.get(url)
        assert response.status_code == 404 and "error" in response.json()


def test_the_server_binds_loopback_unless_told_and_then_warns() -> None:
    assert bind_address(None) == ("127.0.0.1", None)
    assert bind_address("127.0.0.1") == ("127.0.0.1", None)
    assert bind_address("::1") == ("::1", None)
    host, warning = bind_address("0.0.0.0")
    assert host == "0.0.0.0" and warning is not None and "no authentication" in warning
    assert bind_address("10.1.2.3")[1] is not None


def test_the_ui_command_refuses_bad_options_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from .cli_helpers import run_error

    assert "--port" in run_error(capsys, "ui", "--port", "0")
    assert "--db" in run_error(capsys, "ui", "--db", "/nonexistent.duckdb")


def test_the_runs_page_lists_a_sweeps_rows_from_its_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .cli_helpers import main_in_process

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"name": "tiny", "command": "traffic train", "base": {
        "model": "llama3-8b", "seq_len": 4096, "global_batch": 256, "gpus": 16},
        "axes": {"tp": [1, 2, 4], "dp": [4, 8, 16]}, "constraints": ["tp * dp == gpus"]}))  # fmt: skip
    db = tmp_path / "r.duckdb"
    main_in_process(capsys, "sweep", "-f", str(sweep), "--db", str(db), "--workers", "1")
    with TestClient(create_app(db=str(db))) as c:
        page = c.get("/runs").text
    assert 'id="sweep-rows"' in page and page.count("<td>tiny</td>") == 3


def test_aifabric_ui_serves_on_loopback_by_default(tmp_path: Path) -> None:
    """The real command in its own process: it listens on 127.0.0.1 and answers there."""
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "aifabric", "ui", "--port", str(port)],
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for _ in range(300):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/jobs",
                                              timeout=1).read()  # fmt: skip
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("aifabric ui did not answer")
        assert json.loads(body) == {"jobs": []}
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        if listening:
            assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "warning" not in err
