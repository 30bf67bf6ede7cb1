"""The web app and a report in a real browser: Debian's headless Chromium driven by
Playwright (pointed at /usr/bin/chromium; no browser download). The server runs on a free
loopback port in a thread. The truth is the API: the numbers a page shows must equal the
JSON of ``GET /api/v1/jobs/{id}``, and each report's charts must have drawn (Plotly's SVG
with the expected titles). Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("AIFABRIC_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
                allow_module_level=True)  # fmt: skip
playwright = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from aifabric.web.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(time_limit_s=120), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/api/v1/jobs", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
    elif not isinstance(obj, list):
        out[prefix[:-1]] = obj
    return out


def _run_from_form(page: Any, server: str, command: str, fields: dict[str, str]) -> str:
    page.goto(server + "/")
    page.select_option("#command", command)
    for key, value in fields.items():
        el = page.locator(f'fieldset:not([hidden]) [data-key="{key}"]')
        if el.evaluate("e => e.tagName") == "SELECT":
            el.select_option(value)
        else:
            el.fill(value)
    page.click("#run")
    page.wait_for_url("**/jobs/*", timeout=30_000)
    page.wait_for_selector("#status[data-ended=true]", timeout=120_000)
    return str(page.url.rsplit("/", 1)[1])


def _check_numbers_equal_the_api(page: Any, server: str, job_id: str) -> dict[str, Any]:
    job = _api(f"{server}/api/v1/jobs/{job_id}")
    assert page.inner_text("#status") == "done" == job["status"]
    flat = _flat(job["result"])
    cells = page.eval_on_selector_all(
        "tr[data-key] td.value", "els => els.map(e => [e.parentElement.dataset.key, "
        "e.dataset.value])")  # fmt: skip
    assert len(cells) > 10
    for key, value in cells:
        assert json.loads(value) == flat[key], key
    return dict(job["result"])


def _check_report_drew(page: Any, titles: list[str]) -> None:
    frame = page.frame_locator("#report")
    frame.locator(".main-svg").first.wait_for(timeout=60_000)
    drawn = frame.locator(".gtitle").all_text_contents()
    for title in titles:
        assert any(t.startswith(title) for t in drawn), (title, drawn)
    assert frame.locator(".main-svg .trace").count() > 0  # traces drawn, not just axes


def test_plan_from_the_form_shows_the_apis_numbers_and_its_charts(server: str,
                                                                  browser: Any) -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    page.goto(server + "/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-form.png"), full_page=True)
    job = _run_from_form(page, server, "plan", {"gpus": "512", "design": "clos"})
    result = _check_numbers_equal_the_api(page, server, job)
    assert result["gpus"] == 512 and result["design"] == "clos"
    shown = page.inner_text('#headline tr[data-key="cost.total_usd"] td.value')
    assert shown == f"{result['cost']['total_usd']:,.0f}"
    _check_report_drew(page, ["Tiers of the clos fabric", "Network cost by category"])
    page.screenshot(path=str(ARTIFACTS / "ui-plan-job.png"), full_page=True)
    page.close()


def test_serve_from_the_form_shows_the_apis_numbers_and_its_charts(server: str,
                                                                   browser: Any) -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    job = _run_from_form(page, server, "simulate serve",
                         {"workload.num_requests": "150", "cluster.instances": "2",
                          "routing.policy": "round_robin"})  # fmt: skip
    result = _check_numbers_equal_the_api(page, server, job)
    assert result["requests"] == 150 and result["scenario"]["routing"] == "round_robin"
    _check_report_drew(page, ["TTFT percentiles by tier", "TBT percentiles by tier"])
    page.screenshot(path=str(ARTIFACTS / "ui-serve-job.png"), full_page=True)
    page.close()


def test_a_bad_field_is_refused_on_the_form_in_one_line(server: str, browser: Any) -> None:
    page = browser.new_page()
    page.goto(server + "/")
    page.select_option("#command", "plan")
    page.fill("#scenario", "gpus: [1, 2")
    page.click("#run")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "scenario_yaml" in page.inner_text("#error")
    page.close()


def test_a_report_file_opens_offline_and_draws(browser: Any, tmp_path: Path) -> None:
    from aifabric.explore.runners import run_command
    from aifabric.report import render_html

    result = run_command("simulate serve", {"seed": 1, "model": "llama3-8b",
                                            "workload": {"rate_rps": 5, "num_requests": 100}})  # fmt: skip
    path = tmp_path / "report.html"
    path.write_text(render_html("simulate serve", [result]), encoding="utf-8")
    context = browser.new_context(offline=True)
    page = context.new_page()
    page.goto(path.as_uri())
    page.locator(".main-svg").first.wait_for(timeout=60_000)
    titles = page.locator(".gtitle").all_text_contents()
    assert "TTFT percentiles by tier" in titles and "Network bytes by kind" in titles
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-serve.png"), full_page=True)
    context.close()
