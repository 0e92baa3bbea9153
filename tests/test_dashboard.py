"""The dashboard at / and the API docs at /docs, driven in a real Chromium by Playwright.

Against the real stack: gunicorn, Redis and rq workers. Every test watches its pages: the
browser console must show no error (but the 4xx answers the test provokes on purpose), no
request may leave 127.0.0.1, and no dialog may open.
"""

import csv
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.apps import serve_api
from tests.support.auth import API_KEYS, bearer
from tests.support.jobs import ARTICLE_JOB, XOR_X
from tests.support.live import submit

pytestmark = pytest.mark.process

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000  # a deadline for the stack, not a timing assertion
# expect()'s own default is 5 s: too short for a job to finish on a busy 2-core machine.
expect.set_options(timeout=TIMEOUT_MS)
# Long enough to be watched while it trains (a few seconds), short enough for the suite.
WATCHED_EPOCHS = 150_000
XSS = "<img src=x onerror=alert(1)>"


def ensure_chromium() -> None:
    """Install Debian's chromium when it is missing (CI runs as root)."""
    if Path(CHROMIUM).exists():
        return
    apt = shutil.which("apt-get")
    assert apt, "chromium is missing and there is no apt-get to install it"
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run([apt, "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    assert Path(CHROMIUM).exists()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ensure_chromium()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watched:
    """What a page did that it must not: console errors, requests elsewhere, dialogs."""

    def __init__(self, page: Page):
        self.page = page
        self.console_errors: list[str] = []
        self.foreign: list[str] = []
        self.dialogs: list[str] = []
        self.urls: list[str] = []
        page.on("console", self.on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"pageerror: {exc}"))
        page.on("request", self.on_request)
        page.on("dialog", self.on_dialog)

    def on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def on_request(self, request) -> None:
        self.urls.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1":
            self.foreign.append(request.url)

    def on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self, expected_statuses: tuple[int, ...] = ()) -> None:
        """No console error but the failed loads of ``expected_statuses``; nothing foreign."""
        expected = tuple(f"status of {status} " for status in expected_statuses)
        unexpected = [
            text
            for text in self.console_errors
            if not (text.startswith("Failed to load resource") and any(e in text for e in expected))
        ]
        assert unexpected == []
        assert self.foreign == []
        assert self.dialogs == []


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Watched]]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab, Watched(tab)
    context.close()


def points(tab: Page) -> int:
    return int(tab.get_attribute("#chart", "data-points"))


def wait_for_points(tab: Page, predicate, what: str) -> int:
    """The chart's point count once ``predicate`` accepts it. Polled from here: the page's CSP
    refuses the eval behind Playwright's ``wait_for_function``."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not predicate(count := points(tab)):
        assert time.monotonic() < deadline, f"the chart never {what}: {count} points"
        tab.wait_for_timeout(50)
    return count


def test_a_submitted_job_is_listed_and_its_chart_grows_while_it_trains(
    live_server, start_worker, page, tmp_path
):
    tab, watched = page
    job = {**ARTICLE_JOB, "training": {**ARTICLE_JOB["training"], "epochs": WATCHED_EPOCHS}}
    job_id = submit(live_server, job)

    tab.goto(f"{live_server}/#/jobs")
    row = tab.locator(f'tr[data-job="{job_id}"]')
    expect(row.locator("td.status")).to_have_text("queued")
    tab.get_by_label("Status").select_option("started")
    expect(tab.get_by_text("No jobs on this page with that status.")).to_be_visible()
    expect(row).to_have_count(0)
    tab.get_by_label("Status").select_option("queued")
    row.get_by_role("link", name=job_id).click()
    expect(tab.locator("#job-status")).to_have_text("queued")

    start_worker()  # the page is following the stream before the job starts
    seen = wait_for_points(tab, lambda n: n > 0, "drew a point")
    assert seen < WATCHED_EPOCHS  # drawn while training, from the stream
    wait_for_points(tab, lambda n: n > seen, "gained points")
    expect(tab.locator("#job-status")).to_have_text("finished")
    wait_for_points(tab, lambda n: n == WATCHED_EPOCHS, "drew every epoch")
    assert tab.locator("#chart canvas").count() == 1
    expect(tab.get_by_role("link", name="Model, spec and predictions")).to_be_visible()
    shot = Path(os.environ.get("DASHBOARD_SCREENSHOT", tmp_path / "job.png"))
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A finished job's page draws the same curve from /history.
    tab.reload()
    expect(tab.locator("#job-status")).to_have_text("finished")
    wait_for_points(tab, lambda n: n == WATCHED_EPOCHS, "drew every epoch from /history")
    watched.assert_clean()


def test_a_prediction_from_the_model_page_shows_what_post_predict_answers(
    live_server, start_worker, page, tmp_path
):
    tab, watched = page
    job = {**ARTICLE_JOB, "training": {**ARTICLE_JOB["training"], "epochs": 500}}
    job_id = submit(live_server, job)
    start_worker()
    tab.goto(f"{live_server}/#/jobs/{job_id}")
    expect(tab.locator("#job-status")).to_have_text("finished")
    tab.get_by_role("link", name="Model, spec and predictions").click()
    expect(tab.locator("#model-facts")).to_contain_text("Parameters")
    assert '"sigmoid"' in tab.locator("#model-spec").text_content()

    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="") as f:
        csv.writer(f).writerows([["a", "b"], *XOR_X])
    tab.set_input_files("#predict-file", str(rows))
    expect(tab.locator("#predict-rows")).to_have_value("a,b\n0,0\n0,1\n1,0\n1,1\n")
    tab.get_by_role("button", name="Predict").click()
    cells = tab.locator("#predictions td.output")
    expect(cells).to_have_count(4)
    shown = [float(text) for text in cells.all_text_contents()]

    answer = requests.post(
        f"{live_server}/v1/models/{job_id}/predict", json={"inputs": XOR_X}, timeout=10
    )
    assert shown == [row[0] for row in answer.json()["outputs"]]

    with tab.expect_download() as download:
        tab.get_by_role("button", name="Download ONNX").click()
    onnx = requests.get(f"{live_server}/v1/models/{job_id}/onnx", timeout=10).content
    assert Path(download.value.path()).read_bytes() == onnx
    watched.assert_clean()


def test_a_csv_uploaded_through_the_page_becomes_a_dataset(live_server, page, tmp_path):
    tab, watched = page
    data = tmp_path / "xor.csv"
    data.write_text("x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    tab.goto(f"{live_server}/#/datasets")
    tab.set_input_files("#dataset-file", str(data))
    tab.get_by_label("Target column(s)").fill("y")
    tab.get_by_role("button", name="Upload").click()
    dataset_id = tab.locator('[data-field="id"]').text_content()

    stored = requests.get(f"{live_server}/v1/datasets/{dataset_id}", timeout=10).json()
    assert (stored["rows"], stored["columns"], stored["outputs"]) == (4, 2, 1)
    expect(tab.locator('[data-field="rows"]')).to_have_text("4")
    expect(tab.locator('[data-field="sha256"]')).to_have_text(stored["sha256"])
    watched.assert_clean()


def test_markup_in_a_csv_header_is_shown_as_text_and_never_runs(live_server, page, tmp_path):
    tab, watched = page
    data = tmp_path / "evil.csv"
    data.write_text(f"x1,{XSS},y\n0,abc,0\n")
    response = tab.goto(f"{live_server}/#/datasets")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "unsafe" not in policy
    tab.set_input_files("#dataset-file", str(data))
    tab.get_by_label("Target column(s)").fill("y")
    tab.get_by_role("button", name="Upload").click()

    error = tab.locator("#dataset-result .error")
    expect(error).to_contain_text(f"column '{XSS}'")  # the server's message, as text
    assert tab.locator("#dataset-result img").count() == 0
    assert not any(url.endswith("/x") for url in watched.urls)  # the img was never made
    watched.assert_clean(expected_statuses=(422,))


def test_with_keys_the_page_asks_once_and_another_tenants_job_is_not_found(
    redis_url, browser, page
):
    tab, watched = page
    with serve_api(redis_url, API_KEYS=API_KEYS) as base:
        job = {**ARTICLE_JOB, "training": {**ARTICLE_JOB["training"], "epochs": 10}}
        alices = submit(base, job, **bearer("alice"))

        tab.goto(f"{base}/")
        expect(tab.get_by_label("API key")).to_be_focused()  # keyboard only, from here
        tab.keyboard.type("wrong-key")
        tab.keyboard.press("Enter")
        expect(tab.get_by_role("alert")).to_have_text("That key was refused.")
        tab.keyboard.type("bob-key")
        tab.keyboard.press("Enter")
        expect(tab.locator("#jobs")).to_be_visible()
        expect(tab.get_by_text("No jobs on this page.")).to_be_visible()  # not Alice's
        tab.reload()
        expect(tab.locator("#jobs")).to_be_visible()  # asked once: no prompt again

        tab.goto(f"{base}/#/jobs/{alices}")
        expect(tab.get_by_role("alert")).to_contain_text(f"Not found: No job {alices}.")

        tab.get_by_role("button", name="Forget key").click()
        tab.get_by_label("API key").fill("alice-key")
        tab.get_by_role("button", name="Use this key").click()
        expect(tab.locator("#job-status")).to_have_text("queued")
        tab.get_by_role("button", name="Cancel job").click()
        expect(tab.locator("#job-status")).to_have_text("canceled")
        stored = requests.get(f"{base}/v1/jobs/{alices}", headers=bearer("alice"), timeout=10)
        assert stored.json()["status"] == "canceled"
        assert tab.evaluate("sessionStorage.getItem('backprop.apiKey')") == "alice-key"
        assert not any("-key" in url for url in watched.urls)  # never in a URL
        watched.assert_clean(expected_statuses=(401, 404))


def test_the_api_docs_are_served_from_the_repository(live_server, page):
    tab, watched = page
    tab.goto(f"{live_server}/docs")
    expect(tab.get_by_text("backprop training service").first).to_be_visible()
    expect(tab.get_by_text("/v1/jobs/{job_id}/events").first).to_be_attached()
    watched.assert_clean()


def test_the_pages_fit_a_phone(live_server, browser):
    context = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        tab = context.new_page()
        watched = Watched(tab)
        submit(live_server, {**ARTICLE_JOB, "training": {**ARTICLE_JOB["training"], "epochs": 5}})
        for route in ("#/jobs", "#/datasets"):
            tab.goto(f"{live_server}/{route}")
            expect(tab.locator("main h1")).to_be_visible()
            expect(tab.locator("main h1")).to_be_in_viewport()
            # Nothing wider than the screen: the page never scrolls sideways.
            assert tab.evaluate("document.documentElement.scrollWidth") <= 360, route
        tab.goto(f"{live_server}/#/jobs")
        expect(tab.locator("td.status")).to_be_in_viewport(ratio=1)  # no sideways scrolling
        watched.assert_clean()
    finally:
        context.close()


def test_a_name_and_tag_of_markup_show_as_text_and_the_spec_shows(live_server, page):
    tab, watched = page
    job = {**ARTICLE_JOB, "training": {**ARTICLE_JOB["training"], "epochs": 7}}
    job_id = submit(live_server, {**job, "name": XSS, "tags": [XSS, "plain"]})

    tab.goto(f"{live_server}/#/jobs")
    row = tab.locator(f'tr[data-job="{job_id}"]')
    expect(row.locator("td.name")).to_have_text(XSS)
    expect(row.locator("td.tags")).to_have_text(f"{XSS}, plain")
    row.get_by_role("link", name=job_id).click()
    expect(tab.locator("#job-name")).to_have_text(XSS)
    expect(tab.locator("#job-tags")).to_have_text(f"{XSS}, plain")
    spec = tab.locator("#job-spec")
    expect(spec).to_contain_text('"epochs": 7')
    expect(spec).to_contain_text('"name": "<img src=x onerror=alert(1)>"')
    assert tab.locator("main img").count() == 0
    assert not any(url.endswith("/x") for url in watched.urls)  # no img was ever made
    watched.assert_clean()  # and no dialog opened


def test_the_status_filter_is_the_servers_across_pages(live_server, page):
    tab, watched = page
    job = {**ARTICLE_JOB, "training": {**ARTICLE_JOB["training"], "epochs": 5}}
    queued = submit(live_server, job)
    for _ in range(21):  # more than a page of newer jobs, canceled (no worker runs)
        newer = submit(live_server, job)
        assert requests.delete(f"{live_server}/v1/jobs/{newer}", timeout=10).status_code == 200
    tab.goto(f"{live_server}/#/jobs?status=queued")
    expect(tab.locator(f'tr[data-job="{queued}"] td.status')).to_have_text("queued")
    expect(tab.locator("#jobs tbody tr")).to_have_count(1)
    watched.assert_clean()
