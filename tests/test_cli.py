"""The ``backprop`` CLI as a subprocess against the live stack."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.support.jobs import DIVERGING_JOB, GOOD_JOB, LONG_JOB, XOR_X, XOR_Y
from tests.support.live import Api

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 60  # seconds a CLI run may take before the test gives up (not a timing assertion)


def environment(url: str) -> dict:
    """This environment with the CLI's URL, the client importable and no proxy."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return {**env, "BACKPROP_URL": url, "PYTHONPATH": str(ROOT / "client")}


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m backprop_client *args``; its result, with text output."""
    command = [sys.executable, "-m", "backprop_client", *args]
    return subprocess.run(
        command, env=environment(url), capture_output=True, text=True, timeout=DEADLINE
    )


def job_file(tmp_path: Path, job: dict) -> str:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return str(path)


def test_submit_wait_shows_progress_and_exits_0(live_server, start_worker, tmp_path):
    start_worker()
    job = {**GOOD_JOB, "training": {**GOOD_JOB["training"], "epochs": 300}}
    result = cli(live_server, "submit", job_file(tmp_path, job), "--wait")
    assert result.returncode == 0, result.stderr
    job_id, outcome = result.stdout.split("\n")[:2]
    record = requests.get(f"{live_server}/v1/jobs/{job_id}", timeout=10).json()
    assert record["status"] == "finished"
    assert outcome == f"finished: model {record['model_id']}"
    assert "epoch 300/300 [####################] loss " in result.stderr


def test_a_failed_job_exits_1_with_its_error(live_server, start_worker, tmp_path):
    start_worker()
    result = cli(live_server, "submit", job_file(tmp_path, DIVERGING_JOB), "--wait")
    assert result.returncode == 1
    assert "failed: diverged: " in result.stderr and "Traceback" not in result.stderr


def test_an_invalid_job_prints_the_field_errors_and_exits_2(live_server, tmp_path):
    job = {**GOOD_JOB, "training": {**GOOD_JOB["training"], "epoch": 3}}
    result = cli(live_server, "submit", job_file(tmp_path, job))
    assert result.returncode == 2
    assert "error 422: " in result.stderr
    assert "  training.epoch: Unknown field." in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_unknown_job_exits_1_with_the_servers_message(live_server):
    result = cli(live_server, "jobs", "show", "0" * 32)
    assert result.returncode == 1
    assert result.stderr.startswith("error 404: ") and "Traceback" not in result.stderr


def test_jobs_ls_is_a_table_filtered_by_status(live_server, tmp_path):
    path = job_file(tmp_path, LONG_JOB)  # no worker: both stay queued
    ids = [cli(live_server, "submit", path).stdout.strip() for _ in range(2)]
    lines = cli(live_server, "jobs", "ls").stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "EPOCH", "LOSS", "CREATED", "NAME", "TAGS"]
    assert [line.split()[:2] for line in lines[1:]] == [[i, "queued"] for i in reversed(ids)]
    assert cli(live_server, "jobs", "ls", "--status", "finished").stdout.splitlines()[1:] == []


def test_output_into_a_pipe_closed_early_stops_quietly(live_server, tmp_path):
    """``backprop jobs ls | head -1``: a reader that has gone is no error to print."""
    cli(live_server, "submit", job_file(tmp_path, LONG_JOB))
    command = [sys.executable, "-m", "backprop_client", "jobs", "ls"]
    env = environment(live_server)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        p.stdout.close()  # before the CLI writes a line
        stderr = p.stderr.read().decode()
        assert p.wait(timeout=DEADLINE) == 141, stderr
    assert stderr == ""


def test_jobs_ls_passes_status_and_tags_to_the_server(live_server, tmp_path):
    tagged = {}
    for name, tags in (("first", ["a", "b"]), ("second", ["a"]), ("third", ["b"])):
        path = job_file(tmp_path, {**LONG_JOB, "name": name, "tags": tags})  # stays queued
        tagged[name] = cli(live_server, "submit", path).stdout.strip()
    canceled = requests.delete(f"{live_server}/v1/jobs/{tagged['third']}", timeout=10)
    assert canceled.status_code == 200

    def listed(*args):
        result = cli(live_server, "jobs", "ls", *args)
        assert result.returncode == 0, result.stderr
        return [line.split() for line in result.stdout.splitlines()[1:]]

    assert [row[0] for row in listed("--tag", "a")] == [tagged["second"], tagged["first"]]
    rows = listed("--tag", "a", "--tag", "b")
    assert [(row[0], row[-2], row[-1]) for row in rows] == [(tagged["first"], "first", "a,b")]
    assert [row[0] for row in listed("--status", "canceled", "--tag", "b")] == [tagged["third"]]
    assert listed("--status", "queued", "--tag", "b") == [listed("--tag", "a", "--tag", "b")[0]]


def test_sigint_cancels_the_job_and_exits_130(live_server, start_worker, tmp_path):
    start_worker()
    command = [sys.executable, "-m", "backprop_client", "submit", job_file(tmp_path, LONG_JOB)]
    with subprocess.Popen(
        [*command, "--wait", "--cancel-on-interrupt"],
        env=environment(live_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # bytes: text mode would turn the progress line's \r into \n
    ) as process:
        follow_and_interrupt(process, live_server)


def follow_and_interrupt(process: subprocess.Popen, live_server: str) -> None:
    """Interrupt a ``submit --wait --cancel-on-interrupt`` once it follows its job; check it."""
    killer = threading.Timer(DEADLINE, process.kill)  # never hang the suite
    killer.start()
    try:
        job_id = process.stdout.readline().decode().strip()
        # The first character on stderr is the progress line's: the CLI is following the job.
        assert process.stderr.read(1) == b"\r"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=DEADLINE) == 130
        with requests.Session() as session:
            record = Api(live_server, session).wait_until_done(job_id)
        assert record["status"] == "canceled"
        stderr = process.stderr.read().decode()
        assert f"asked the service to cancel job {job_id}" in stderr and "Traceback" not in stderr
    finally:
        killer.cancel()
        process.kill()
        process.wait()


def model_of(url: str, job_id: str) -> str:
    return requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["model_id"]


def test_logs_follow_prints_one_line_per_event(live_server, start_worker, tmp_path):
    start_worker()
    job = {**GOOD_JOB, "training": {**GOOD_JOB["training"], "epochs": 2000}}
    job_id = cli(live_server, "submit", job_file(tmp_path, job)).stdout.strip()
    result = cli(live_server, "logs", "-f", job_id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2:] == ["status finished", f"finished: model {model_of(live_server, job_id)}"]
    assert all(line.startswith(("epoch ", "status ")) for line in lines[:-1])


def test_predict_from_a_csv_equals_the_api(live_server, start_worker, tmp_path):
    start_worker()
    path = tmp_path / "xor.csv"
    lines = [f"{x[0]},{x[1]},{y[0]}\n" for x, y in zip(XOR_X, XOR_Y, strict=True)]
    path.write_text("a,b,y\n" + "".join(lines))
    upload = cli(live_server, "datasets", "upload", str(path), "--target", "y")
    assert upload.returncode == 0, upload.stderr
    dataset_id = json.loads(upload.stdout)["id"]
    job = {key: value for key, value in GOOD_JOB.items() if key != "data"}
    job["dataset_id"] = dataset_id
    submitted = cli(live_server, "submit", job_file(tmp_path, job), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    model_id = submitted.stdout.split()[-1]
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n0,0\n1,0\n")
    out = tmp_path / "out.csv"
    result = cli(live_server, "predict", model_id, "--input", str(rows), "--output", str(out))
    assert result.returncode == 0, result.stderr
    expected = requests.post(
        f"{live_server}/v1/models/{model_id}/predict", json={"inputs": [[0, 0], [1, 0]]}, timeout=10
    ).json()["outputs"]
    written = out.read_text().splitlines()
    assert written[0] == "output_0"
    assert [[float(cell) for cell in line.split(",")] for line in written[1:]] == expected


@pytest.mark.slow  # a fresh venv and a package build
def test_pip_install_of_the_client_directory_gives_the_cli(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT / "client")]
    subprocess.run(pip, check=True, timeout=600)
    shown = subprocess.run(
        [str(venv / "bin" / "backprop"), "--help"], capture_output=True, text=True, check=True
    )
    assert "submit" in shown.stdout and "datasets" in shown.stdout


LR = "training.optimizer.learning_rate"


def sweep_file(tmp_path: Path, job: dict, values: list, **fields) -> str:
    body = {"job": job, "parameters": {LR: {"values": values}}, "objective": {"metric": "loss"}}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({**body, **fields}))
    return str(path)


def test_sweeps_submit_wait_prints_the_trials_and_the_best(live_server, start_worker, tmp_path):
    start_worker()
    job = {**GOOD_JOB, "training": {**GOOD_JOB["training"], "epochs": 50}}
    path = sweep_file(tmp_path, job, [0.05, 2.0], parallel=2)
    dry = cli(live_server, "sweeps", "submit", path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["trials"] == 2
    result = cli(live_server, "sweeps", "submit", path, "--wait")
    assert result.returncode == 0, result.stderr
    sweep_id, header, *trials, best = result.stdout.splitlines()
    sweep = requests.get(f"{live_server}/v1/sweeps/{sweep_id}", timeout=10).json()
    assert header.split() == ["TRIAL", "JOB", "STATUS", "EPOCHS", "LOSS", "PARAMETERS"]
    assert [row.split()[:4] for row in trials] == [
        [str(t["index"]), t["job_id"], "finished", "50"] for t in sweep["trials"]
    ]
    assert trials[1].split()[-1] == f"{LR}=2.0"
    top = sweep["best_trial"]
    assert (
        best == f"best: trial {top['index']} job {top['job_id']} loss {top['objective_value']:.6g}"
    )
    assert (
        f"sweep {sweep_id} finished 2/2 ended (finished 2, failed 0, canceled 0)" in result.stderr
    )

    shown = cli(live_server, "sweeps", "show", sweep_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].startswith(f"sweep {sweep_id} finished 2/2 ended")
    assert shown.stdout.splitlines()[1:] == [header, *trials]
    as_json = cli(live_server, "sweeps", "show", sweep_id, "--json")
    assert json.loads(as_json.stdout) == sweep
    # Its trials, best first: the search's sweep_id filter and a final-metric sort.
    listed = cli(live_server, "jobs", "ls", "--sweep", sweep_id, "--sort", "final_loss")
    assert listed.returncode == 0, listed.stderr
    query = {"sweep_id": sweep_id, "sort": "final_loss"}
    ranked = requests.get(f"{live_server}/v1/jobs", params=query, timeout=10).json()["jobs"]
    rows = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert sorted(rows) == sorted(t["job_id"] for t in sweep["trials"])
    assert rows == [job["id"] for job in ranked]


def test_a_canceled_sweep_exits_1_and_errors_print_as_elsewhere(live_server, tmp_path):
    path = sweep_file(tmp_path, LONG_JOB, [0.1, 0.2, 0.3])  # no worker: nothing ends by itself
    command = [sys.executable, "-m", "backprop_client", "sweeps", "submit", path, "--wait"]
    with subprocess.Popen(
        command, env=environment(live_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        killer = threading.Timer(DEADLINE, process.kill)  # never hang the suite
        killer.start()
        try:
            sweep_id = process.stdout.readline().decode().strip()
            canceled = cli(live_server, "sweeps", "cancel", sweep_id)
            assert canceled.returncode == 0, canceled.stderr
            assert canceled.stdout.startswith(f"sweep {sweep_id} canceled 3/3 ended")
            assert process.wait(timeout=DEADLINE) == 1
            stderr = process.stderr.read().decode()
            assert "canceled: canceled" in stderr and "Traceback" not in stderr
        finally:
            killer.cancel()
            process.kill()
    unknown = cli(live_server, "sweeps", "show", "0" * 32)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error 404: ")
    invalid = cli(live_server, "sweeps", "submit", sweep_file(tmp_path, LONG_JOB, [0.1, -1]))
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert "error 422: Trial 1" in invalid.stderr and "  parameters." in invalid.stderr


def test_aliases_commands_and_predict_by_alias(live_server, start_worker, tmp_path):
    start_worker()
    submitted = cli(live_server, "submit", job_file(tmp_path, GOOD_JOB), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    model_id = submitted.stdout.split()[-1]
    made = cli(live_server, "aliases", "set", "production", model_id)
    assert (made.returncode, made.stdout) == (0, f"production -> {model_id}\n")
    listed = cli(live_server, "aliases", "ls").stdout.splitlines()
    assert [line.split() for line in listed] == [["NAME", "MODEL"], ["production", model_id]]
    shown = cli(live_server, "aliases", "show", "production").stdout.splitlines()
    assert shown[0] == f"production -> {model_id}"
    assert shown[1].split() == ["AT", "BY", "KEY", "FROM", "TO"]
    assert shown[2].split()[1:] == ["public", model_id]  # no key, no previous model

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([[0, 1], [1, 1]]))
    predicted = cli(live_server, "predict", "production", "--input", str(rows))
    assert predicted.returncode == 0, predicted.stderr
    expected = requests.post(
        f"{live_server}/v1/models/{model_id}/predict", json={"inputs": [[0, 1], [1, 1]]}, timeout=10
    ).json()
    assert json.loads(predicted.stdout) == expected

    assert cli(live_server, "aliases", "rm", "production").returncode == 0
    gone = cli(live_server, "aliases", "show", "production")
    assert gone.returncode == 1 and gone.stderr.startswith("error 404: ")
    assert cli(live_server, "predict", "production", "--input", str(rows)).returncode == 1
    bad = cli(live_server, "aliases", "set", "0" * 32, model_id)
    assert bad.returncode == 2 and "  name: " in bad.stderr and "Traceback" not in bad.stderr
