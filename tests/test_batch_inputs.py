"""Batch input checks that need no server: the CSV (encoding, quoting, field counts, faces), overrides,
unique output names, and the CLI's refusals of bad options (one line, exit 2, nothing written)."""

from __future__ import annotations

import os
import sys

import pytest

from consisid_core.batch import load_jobs
from consisid_core.batch.jobs import JobsFileError, parse_overrides
from support.bad_files import bomb_png
from support.fake_comfy import faces  # noqa: F401 (fixture)

HEADER = "face,prompt,seed"


def _csv(tmp_path, text: str | bytes, name: str = "jobs.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def test_utf8_with_and_without_bom_is_read(tmp_path, faces):
    body = f"{HEADER}\nfaces/astronaut.png,un café à Paris,1\n"
    for raw in (body.encode("utf-8"), b"\xef\xbb\xbf" + body.encode("utf-8")):
        (job,) = load_jobs(_csv(tmp_path, raw))
        assert job.prompt == "un café à Paris" and job.error is None


@pytest.mark.parametrize("encoding, message", [
    ("latin-1", "is not UTF-8: line 3 has byte 0xe9 ('é' in Latin-1/Windows-1252"),
    ("utf-16", "is UTF-16 text; save it as UTF-8"),
])
def test_other_encodings_are_refused_naming_the_line(tmp_path, faces, encoding, message):
    text = f"{HEADER}\nfaces/astronaut.png,a man,1\nfaces/astronaut.png,un café,2\n"
    with pytest.raises(JobsFileError, match="save it as UTF-8") as caught:
        load_jobs(_csv(tmp_path, text.encode(encoding)))
    assert message in str(caught.value)


@pytest.mark.parametrize("text, line", [
    ('face,prompt\nfaces/astronaut.png,"a man walking\nfaces/astronaut.png,a woman\n', 2),  # never closed
    ('face,prompt\nfaces/astronaut.png,"a man walking\nfaces/astronaut.png,"a woman"\n', 2),  # closed mid-field
])
def test_an_unclosed_quote_is_refused_instead_of_swallowing_the_next_row(tmp_path, faces, text, line):
    with pytest.raises(JobsFileError, match=f"line {line}: a quoted field is not closed properly"):
        load_jobs(_csv(tmp_path, text))


def test_a_quoted_prompt_may_span_lines_and_hold_commas(tmp_path, faces):
    jobs = load_jobs(_csv(tmp_path, 'face,prompt\nfaces/astronaut.png,"a man, walking\nslowly"\nfaces/astronaut.png,a woman\n'))
    assert [j.prompt for j in jobs] == ["a man, walking\nslowly", "a woman"]
    assert [(j.row, j.line) for j in jobs] == [(1, 2), (2, 4)]


@pytest.mark.parametrize("text, message", [
    (f"{HEADER}\n", "has a header but no jobs"),
    (f"{HEADER}\n\n \n", "has a header but no jobs"),
    ("", "is empty"),
])
def test_a_csv_without_jobs_is_refused(tmp_path, text, message):
    with pytest.raises(JobsFileError, match=message):
        load_jobs(_csv(tmp_path, text))


def test_row_problems_name_the_row_and_line(tmp_path, faces):
    bomb_png(faces / "bomb.png")
    rows = [
        "faces/astronaut.png,a man, walking,1",  # unquoted comma: one field too many
        f"{sys.executable},a woman,2",  # a system file, not an image
        "faces/bomb.png,a bomb,3",
        "faces/astronaut.png,fine,4",
        "faces/astronaut.png,big seed,18446744073709551621",
        "faces/astronaut.png,bad seed,seven",
    ]
    jobs = load_jobs(_csv(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    errors = [j.error for j in jobs]
    assert errors[0].startswith("row 1 (line 2): 4 fields but the header has 3") and "double quotes" in errors[0]
    assert errors[1].startswith("row 2 (line 3): face: ") and "is not an image PIL can read" in errors[1]
    assert errors[2].startswith("row 3 (line 4): face: ") and "decompression bomb" in errors[2]
    assert errors[3] is None and errors[4] is None and jobs[4].seed == 5  # taken modulo 2^64
    assert errors[5] == "row 6 (line 7): seed 'seven' is not a whole number"


@pytest.mark.parametrize("text, expected", [
    ("steps=30; cfg=7", {"steps": "30", "cfg": "7"}),
    ("steps=30, cfg=7", {"steps": "30", "cfg": "7"}),
    ("steps=30,cfg=7;ConsisIDDecode.vae_tiling=false", {"steps": "30", "cfg": "7", "ConsisIDDecode.vae_tiling": "false"}),
    ("negative_prompt=blurry, ugly, steps=20", {"negative_prompt": "blurry, ugly", "steps": "20"}),
    ("steps=30\ncfg=7", {"steps": "30", "cfg": "7"}),
    ("steps=30, 8.cfg=7", {"steps": "30", "8.cfg": "7"}),
])
def test_overrides_accept_semicolons_and_commas(text, expected):
    assert parse_overrides(text) == expected


def test_job_names_that_sanitise_alike_get_unique_output_names(tmp_path, faces):
    text = "face,prompt,job\n" + "".join(f"faces/astronaut.png,p{i},{name}\n" for i, name in enumerate(["a/b", "a_b", "A_B", "c"]))
    jobs = load_jobs(_csv(tmp_path, text))
    assert [j.output_name for j in jobs] == ["a_b", "a_b-2", "A_B-3", "c"]


# ---------------------------------------------------------------- the batch command's options


def _batch(capsys, tmp_path, *extra: str, jobs: str | None = None) -> tuple[int, str]:
    from consisid_core.cli import main

    jobs = jobs or _csv(tmp_path, "face,prompt\nfaces/astronaut.png,a man\n")
    args = ["batch", "--jobs", jobs, "--no-progress", *extra]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "out")]
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--timeout", "-1"], "timeout must be a number of seconds above 0; got -1"),
    (["--timeout", "0"], "timeout must be a number of seconds above 0"),
    (["--timeout", "nan"], "timeout must be a number of seconds above 0"),
    (["--server", "not a url"], "--server 'not a url' is not a server address; give an http(s) URL"),
    (["--servers", "http://127.0.0.1:8188,localhost:8188"], "'localhost:8188' is not a server address"),
    (["--server", "http://127.0.0.1:99999"], "is not a server address"),
])
def test_bad_batch_options_are_one_line_and_exit_2(capsys, tmp_path, faces, extra, message):
    code, err = _batch(capsys, tmp_path, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists(), "nothing is created for a refused batch"


def test_batch_out_that_is_a_file_is_refused_and_kept(capsys, tmp_path, faces):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    code, err = _batch(capsys, tmp_path, "--out", str(target))
    assert code == 2 and f"--out {target} is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "keep me"


def test_batch_latin1_jobs_file_is_one_line(capsys, tmp_path, faces):
    jobs = _csv(tmp_path, "face,prompt\nfaces/astronaut.png,un caf\xe9\n".encode("latin-1"))
    code, err = _batch(capsys, tmp_path, jobs=jobs)
    assert code == 2 and "is not UTF-8: line 2" in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(tmp_path / "out" / "results.jsonl")


# ---------------------------------------------------------------- node ids shared with the nodes


def test_node_ids_are_what_the_nodes_register_and_the_batch_patches():
    from consisid_core import node_ids
    from consisid_core.batch import workflow as wf

    assert (wf.SAMPLER, wf.TEXT_ENCODE) == (node_ids.SAMPLER, node_ids.TEXT_ENCODE)
    classes = [type(name, (), {}) for name in (*node_ids.REQUIRED, *node_ids.OPTIONAL)]
    assert set(node_ids.registry(classes)) == set(node_ids.REQUIRED) | set(node_ids.OPTIONAL)
    with pytest.raises(ImportError, match="no node class registered for ConsisIDSampler"):
        node_ids.registry([c for c in classes if c.__name__ != node_ids.SAMPLER])


def test_bare_override_keys_follow_the_shared_search_order(monkeypatch):
    from consisid_core import node_ids
    from consisid_core.batch import workflow as wf

    flow = {"1": {"class_type": "AnotherNode", "inputs": {"threshold": 0.1}},
            "2": {"class_type": "ConsisIDTeaCacheLike", "inputs": {"threshold": 0.2}}}
    assert wf.resolve_override(flow, "threshold") == [("1", "threshold")]  # unknown classes: alphabetical
    monkeypatch.setattr(node_ids, "OVERRIDE_SEARCH_ORDER", [*node_ids.OVERRIDE_SEARCH_ORDER, "ConsisIDTeaCacheLike"])
    assert wf.resolve_override(flow, "threshold") == [("2", "threshold")]  # a node added to the shared list wins
