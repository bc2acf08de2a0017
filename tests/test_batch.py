"""API batch client end to end against the fake ComfyUI of support/fake_comfy.py (and a real one when
COMFYUI_DIR is set): downloads, failures, several servers, kill and resume, server restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from consisid_core.batch import BatchOptions, load_jobs, load_workflow, run_batch
from consisid_core.batch import workflow as wf
from consisid_core.batch.jobs import JobsFileError, parse_overrides
from consisid_core.batch.websocket import WebSocket
from support.fake_comfy import FakeComfy, api_workflow, faces, results, server, write_jobs  # noqa: F401 (fixtures)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- unit tests


def test_websocket_client_roundtrip(server):
    ws = WebSocket(server.url.replace("http", "ws") + "/ws?clientId=abc", timeout=5)
    ws.settimeout(5)
    first = ws.recv_json()
    assert first["type"] == "status" and first["data"]["sid"] == "abc"
    ws.close()


def test_jobs_csv_columns_overrides_and_row_errors(tmp_path, faces):
    csv_path = tmp_path / "jobs.csv"
    csv_path.write_text(
        "Face Image,Prompt,Negative,Seed,steps,8.cfg,overrides\n"
        "faces/astronaut.png,a woman in space,blurry,7,30,7.5,num_frames=9;ConsisIDDecode.vae_tiling=false\n"
        "faces/missing.png,a man,,,,,\n"
        "faces/astronaut.png,,,abc,,,\n",
        encoding="utf-8",
    )
    jobs = load_jobs(str(csv_path))
    assert [j.name for j in jobs] == ["job-001", "job-002", "job-003"]
    first = jobs[0]
    assert first.face == str(faces / "astronaut.png") and first.negative_prompt == "blurry" and first.seed == 7
    assert first.overrides == {"steps": "30", "8.cfg": "7.5", "num_frames": "9", "ConsisIDDecode.vae_tiling": "false"}
    assert first.error is None
    assert "face image not found" in jobs[1].error
    assert "empty prompt" in jobs[2].error and "seed 'abc'" in jobs[2].error
    # keys are content hashes: stable across reads, different per row
    again = load_jobs(str(csv_path))
    assert [j.key for j in again] == [j.key for j in jobs] and len({j.key for j in jobs}) == 3


def test_jobs_csv_needs_face_and_prompt_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image_path,caption\nx.png,hello\n", encoding="utf-8")
    with pytest.raises(JobsFileError, match="no 'face' column"):
        load_jobs(str(path))
    with pytest.raises(ValueError, match="not key=value"):
        parse_overrides("steps")


def test_apply_job_patches_by_class_and_coerces_types():
    flow = api_workflow()
    patched = wf.apply_job(
        flow, "consisid_abc.png", "a prompt", "bad things", 123,
        {"steps": "30", "cfg": "7", "8.num_frames": "9", "ConsisIDDecode.vae_tiling": "false", "use_dynamic_cfg": "yes"},
        output_prefix="consisid_batch/job-001",
    )
    assert flow["8"]["inputs"]["steps"] == 50, "the original workflow must stay untouched"
    sampler = patched["8"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["num_frames"], sampler["use_dynamic_cfg"]) == (123, 30, 7.0, 9, True)
    assert isinstance(sampler["cfg"], float) and isinstance(sampler["steps"], int)
    assert patched["9"]["inputs"]["vae_tiling"] is False
    assert patched["1"]["inputs"]["image"] == "consisid_abc.png"
    assert patched["5"]["inputs"] == {"model": ["2", 0], "prompt": "a prompt", "negative_prompt": "bad things"}
    assert patched["10"]["inputs"]["filename_prefix"] == "consisid_batch/job-001"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"stepz": "3"}, "no node of the workflow has an input named 'stepz'"),
        ({"steps": "3.5"}, "not a whole number"),
        ({"ConsisIDSampler.foo": "1"}, "has no input 'foo'"),
        ({"NoSuchNode.steps": "1"}, "no node with id or class 'NoSuchNode'"),
        ({"model": "x"}, "wired to another node"),
    ],
)
def test_apply_job_rejects_bad_overrides(overrides, message):
    with pytest.raises(wf.WorkflowError, match=message):
        wf.apply_job(api_workflow(), "f.png", "p", overrides=overrides)


def test_load_workflow_refuses_ui_format(tmp_path):
    path = tmp_path / "ui.json"
    path.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(wf.WorkflowError, match="UI-format"):
        load_workflow(str(path))


def test_output_files_reads_vhs_gifs_and_core_images():
    vhs = {"outputs": {"10": {"gifs": [{"filename": "a.mp4", "subfolder": "s", "type": "output", "format": "video/h264-mp4"}]},
                       "12": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]}}}
    core = {"outputs": {"11": {"images": [{"filename": "b.mp4", "subfolder": "video", "type": "output"}], "animated": [True]}}}
    assert [f["filename"] for f in wf.output_files(vhs)] == ["a.mp4", "p.png"]
    assert wf.output_files(vhs)[0]["video"] and not wf.output_files(vhs)[1]["video"]
    assert wf.output_files(core)[0] == {"node": "11", "key": "images", "filename": "b.mp4", "subfolder": "video", "type": "output", "video": True}


# ---------------------------------------------------------------- end to end against the fake server


def _options(servers, out_dir, flow=None, **kw) -> BatchOptions:
    return BatchOptions(servers=servers, workflow=flow or api_workflow(), out_dir=str(out_dir), progress=False,
                        timeout=60, poll_interval=0.5, reconnect_window=5, **kw)


@pytest.mark.parametrize("output", ["VHS_VideoCombine", "SaveVideo"])
def test_batch_downloads_videos_and_records_failures(tmp_path, faces, server, output):
    rows = [
        "faces/astronaut.png,a woman walking on the moon,,1,3",
        "faces/cat.png,a cat,,2,3",
        "faces/astronaut_flipped.png,a woman in a garden,low quality,3,4",
        "faces/astronaut.png,the same woman dancing,,4,3",
        "faces/nothing_here.png,a ghost,,5,3",
    ]
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows))
    summary = run_batch(jobs, _options([server.url], tmp_path / "out", api_workflow(output)))
    assert (summary.ok, summary.failed, summary.errors) == (3, 2, 0)
    records = {r["job"]: r for r in results(tmp_path / "out")}
    assert set(records) == {"job-001", "job-002", "job-003", "job-004", "job-005"}
    for name, prompt, seed, steps in (("job-001", "a woman walking on the moon", 1, 3), ("job-003", "a woman in a garden", 3, 4)):
        record = records[name]
        assert record["status"] == "ok" and record["error"] is None and record["seconds"] > 0
        with open(record["output"], "rb") as handle:
            assert handle.read() == f"MP4|{prompt}|{seed}|{steps}".encode()
        assert record["output"].endswith(f"{name}.mp4")
    assert records["job-002"]["status"] == "failed"
    assert "ConsisIDFaceCropAlign (node 4): ConsisID Face Crop&Align: no face found" in records["job-002"]["error"]
    assert records["job-005"]["status"] == "failed" and "face image not found" in records["job-005"]["error"]
    # 4 jobs reached the server; 3 distinct faces were uploaded once each
    assert len(server.prompts) == 4 and server.upload_count == 3
    assert server.max_outstanding == 1, "one job in flight per server"
    assert server.prompts[2]["5"]["inputs"]["negative_prompt"] == "low quality"


def test_batch_reports_validation_errors_from_prompt(tmp_path, faces, server):
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a woman,,1,abc"]))
    summary = run_batch(jobs, _options([server.url], tmp_path / "out"))
    assert summary.failed == 1
    error = results(tmp_path / "out")[0]["error"]
    assert "override steps=abc" in error and "not a whole number" in error
    assert not server.prompts, "a job whose overrides do not fit is never submitted"


def test_batch_spreads_jobs_over_servers_one_in_flight_each(tmp_path, faces):
    first, second = FakeComfy(step_delay=0.02), FakeComfy(step_delay=0.02)
    try:
        rows = [f"faces/astronaut{'_flipped' if i % 2 else ''}.png,prompt {i},,{i},5" for i in range(8)]
        jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows))
        started = time.monotonic()
        summary = run_batch(jobs, _options([first.url, second.url], tmp_path / "out"))
        assert summary.ok == 8 and time.monotonic() - started < 60
        assert len(first.prompts) >= 2 and len(second.prompts) >= 2 and len(first.prompts) + len(second.prompts) == 8
        assert first.max_outstanding == 1 and second.max_outstanding == 1
        assert first.upload_count <= 2 and second.upload_count <= 2, "each distinct face uploaded once per server"
        assert {r["server"] for r in results(tmp_path / "out")} == {first.url, second.url}
    finally:
        first.stop()
        second.stop()


def test_batch_survives_a_dead_server(tmp_path, faces, server):
    dead = f"http://127.0.0.1:{_free_port()}"
    rows = [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(4)]
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows))
    summary = run_batch(jobs, _options([dead, server.url], tmp_path / "out"))
    assert summary.ok == 4 and len(server.prompts) == 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_RUNNER = (
    "import argparse, sys\n"
    "from consisid_core.cli import batch\n"
    "p = argparse.ArgumentParser(); batch.add_arguments(p)\n"
    "sys.exit(batch.run(p.parse_args(sys.argv[1:])))\n"
)


def _submitted(out_dir) -> list[dict]:
    path = os.path.join(out_dir, ".submitted.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip().endswith("}")]


def _start_cli(args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", _RUNNER, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_batch_cli_killed_and_restarted_skips_finished_jobs(tmp_path, faces):
    server = FakeComfy(step_delay=0.05)  # 6 steps x 50 ms per good job: slow enough to kill mid-batch
    try:
        rows = [f"faces/{'cat' if i in (2, 6) else 'astronaut'}.png,prompt {i},,{i},6" for i in range(10)]
        jobs_csv = write_jobs(tmp_path / "jobs.csv", rows)
        workflow_path = tmp_path / "flow.json"
        workflow_path.write_text(json.dumps(api_workflow()))
        out = tmp_path / "out"
        args = ["--server", server.url, "--jobs", jobs_csv, "--out", str(out), "--workflow", str(workflow_path), "--no-progress"]
        proc = _start_cli(args)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # kill while a job runs on the server
            done = {r["key"] for r in results(out)}
            in_flight = [r for r in _submitted(out) if r["key"] not in done]
            if len(done) >= 4 and in_flight:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = results(out)
        assert 4 <= len(before) < 10, "the batch must be killed mid-way"
        assert [r for r in _submitted(out) if r["key"] not in {b["key"] for b in before}], "a job was in flight"
        finished_first = {r["job"] for r in before}

        proc = _start_cli(args)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, output  # two jobs failed (no face)
        assert f"{len(before)} skipped" in output
        final = {r["job"]: r for r in results(out)}
        assert len(final) == 10 and len(results(out)) == 10, "every job recorded exactly once"
        assert sorted(n for n, r in final.items() if r["status"] == "failed") == ["job-003", "job-007"]
        assert all(os.path.isfile(r["output"]) for r in final.values() if r["status"] == "ok")
        prompts_per_job = {}
        for flow in server.prompts:
            prompt = flow["5"]["inputs"]["prompt"]
            prompts_per_job[prompt] = prompts_per_job.get(prompt, 0) + 1
        for name in finished_first:  # job-00k ran "prompt k-1"
            assert prompts_per_job[f"prompt {int(name[-3:]) - 1}"] == 1, name
        # the job in flight at the kill is picked up by its prompt id, not submitted again
        assert len(server.prompts) == 10, prompts_per_job
    finally:
        server.stop()


def test_batch_server_restart_mid_job_resubmits(tmp_path, faces):
    server = FakeComfy(step_delay=0.1)
    port = int(server.url.rsplit(":", 1)[1])
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},10" for i in range(2)]))
    holder = {}

    def restart():
        while not server.running:
            time.sleep(0.01)
        time.sleep(0.3)
        server.stop()  # ComfyUI restarted: its queue and history are gone
        time.sleep(0.5)
        holder["new"] = FakeComfy(step_delay=0.01, port=port)

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    try:
        summary = run_batch(jobs, _options([server.url], tmp_path / "out"))
        thread.join(10)
        assert summary.ok == 2, results(tmp_path / "out")
        assert len(holder["new"].prompts) >= 2, "the job lost in the restart was submitted again"
    finally:
        if "new" in holder:
            holder["new"].stop()


# ---------------------------------------------------------------- a real ComfyUI (COMFYUI_DIR)


@pytest.mark.comfyui
@pytest.mark.slow
def test_batch_against_a_real_comfyui(tmp_path, faces):
    """Tiny model folder in the server's models/consisid/, core-video API workflow, 3 good + 1 broken photo."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set: the real-ComfyUI batch test needs a ComfyUI checkout")
    from consisid_core.demo.face_models import write_face_encoder
    from consisid_core.demo.video_models import TinySpec, write_tiny_model

    from pathlib import Path

    from support import comfy_server

    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    base = tmp_path / "comfyui_base"  # --base-directory: nothing is written into COMFYUI_DIR
    name = "consisid_batch_test"
    spec = TinySpec()
    write_face_encoder(write_tiny_model(base / "models" / "consisid" / name, spec))
    (faces / "broken.png").write_bytes(b"not an image at all")
    before = sorted(p.name for p in (Path(comfy_dir) / "custom_nodes").iterdir())
    server = comfy_server.start(Path(comfy_dir), python, base, Path(REPO))
    try:
        url = server.url
        size = f"{spec.width},{spec.height},{spec.frames}"
        header = "face,prompt,seed,steps,width,height,num_frames,memory_mode,precision,ConsisIDModelLoader.model,ConsisIDFaceModelsLoader.model"
        rows = [f"faces/{face},prompt {i},{i},2,{size},none,fp32,{name},{name}"
                for i, face in enumerate(["astronaut.png", "broken.png", "astronaut_flipped.png", "astronaut.png"])]
        jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows, header))
        flow = load_workflow(os.path.join(REPO, "workflows", "api", "consisid_core_video_api.json"))
        summary = run_batch(jobs, _options([url], tmp_path / "out", flow))
        records = {r["job"]: r for r in results(tmp_path / "out")}
        assert summary.ok == 3 and summary.failed == 1, records
        assert "is not an image PIL can read" in records["job-002"]["error"], "refused before it reaches the server"
        import imageio.v3 as iio

        for job in ("job-001", "job-003", "job-004"):
            frames = iio.imread(records[job]["output"], plugin="pyav")
            assert frames.shape[:3] == (spec.frames, spec.height, spec.width)
    finally:
        server.stop()
    assert sorted(p.name for p in (Path(comfy_dir) / "custom_nodes").iterdir()) == before, "COMFYUI_DIR untouched"
