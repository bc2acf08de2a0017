"""CLI speed options: --teacache/--teacache-start/--teacache-end, --weight-dtype, --compile; bad values are
one line before anything loads."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _parse(*argv: str) -> argparse.Namespace:
    from consisid_core.cli.speed_args import add_teacache_arguments

    parser = argparse.ArgumentParser()
    add_teacache_arguments(parser)
    return parser.parse_args(list(argv))


def test_teacache_options_make_the_cache():
    from consisid_core.cli.speed_args import teacache_from_args

    assert teacache_from_args(_parse()) is None
    cache = teacache_from_args(_parse("--teacache", "0.15", "--teacache-start", "5", "--teacache-end", "40"))
    assert (cache.threshold, cache.mode, cache.start_step, cache.end_step) == (0.15, "fixed", 5, 40)
    args = _parse("--weight-dtype", "fp8_e4m3fn", "--compile", "blocks")
    assert (args.weight_dtype, args.compile) == ("fp8_e4m3fn", "blocks")


@pytest.mark.parametrize("argv, words", [
    (["--teacache", "-1"], "TeaCache threshold"),
    (["--weight-dtype", "fp8_e4m3fn_fast", "--device", "cpu"], "fp8_e4m3fn_fast"),
])
def test_bad_speed_options_are_one_line_before_loading(tmp_path, argv, words):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-m", "consisid_core", "generate", "--model", str(tmp_path / "none"),
                             "--out", str(tmp_path / "x.mp4"), *argv], capture_output=True, text=True, cwd=REPO,
                            env=env, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and words in result.stderr
    assert result.stderr.strip().count("\n") == 0
