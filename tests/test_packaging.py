"""The repository installs as a normal package (only consisid_core + its assets) and runs from any folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the repository's packaging files (the tree itself gets no build/ folder)."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE", "__init__.py", "install.py", "requirements.txt"):
        shutil.copy(REPO / name, src / name)
    for folder in ("consisid_core", "nodes", "tests"):  # nodes/ and tests/ must stay out of the wheel
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("consisid-*.whl")
    return built


def test_wheel_holds_only_consisid_core_and_its_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"consisid_core", f"{wheel.name.split('-py3')[0]}.dist-info"}
    assert "consisid_core/assets/default_face.png" in names
    for workflow in sorted((REPO / "workflows" / "api").glob("*.json")):  # `batch` needs them after pip install
        assert f"consisid_core/assets/workflows/{workflow.name}" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/entry_points.txt").decode()
    assert "consisid = consisid_core.cli:main" in entry_points


def test_installed_package_runs_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import consisid_core, sys; from consisid_core.cli.generate import DEFAULT_FACE; "
            "sys.exit(0 if DEFAULT_FACE.is_file() and consisid_core.__file__.startswith(sys.argv[1]) else 1)")
    assert subprocess.run([sys.executable, "-c", code, str(target)], cwd=elsewhere, env=env, timeout=120).returncode == 0
    done = subprocess.run([sys.executable, "-m", "consisid_core", "check-models", "--help"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "check-models" in done.stdout, done.stderr[-1000:]
    # batch without --workflow: the packaged workflow loads, so the first complaint is the (missing) jobs file
    batch = subprocess.run([sys.executable, "-m", "consisid_core", "batch", "--jobs", "missing.csv", "--out", "out"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert batch.returncode == 2 and "missing.csv" in batch.stderr and "workflow" not in batch.stderr, batch.stderr


def test_packaged_workflows_are_the_pack_workflows():
    """consisid_core/assets/workflows/ is the installed copy of workflows/api/ (what ComfyUI serves): identical."""
    pack = {p.name: p.read_bytes() for p in (REPO / "workflows" / "api").glob("*.json")}
    packaged = {p.name: p.read_bytes() for p in (REPO / "consisid_core" / "assets" / "workflows").glob("*.json")}
    assert pack and packaged == pack, "copy workflows/api/*.json to consisid_core/assets/workflows/"


def test_no_machine_specific_paths_in_the_repository():
    """Skip messages, docs and scripts name folders relative to the repository, never a developer machine's."""
    pattern = re.compile(r"(?<![\w./~-])/(?:work|root|home|Users|mnt|opt)/[\w.-]+")
    skip = {".git", "__pycache__", "build", "dist", "node_modules"}
    suffixes = {".py", ".sh", ".md", ".toml", ".txt", ".js", ".json", ".yaml", ".yml", ".cfg", ""}
    offenders = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".venv")]
        for name in files:
            path = Path(folder) / name
            if path.suffix not in suffixes:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not offenders, offenders


def test_the_test_command_leaves_the_main_environment_alone():
    """tests/run.sh installs test extras (opencv-python<5 among them): never into the README's main .venv."""
    run = (REPO / "tests" / "run.sh").read_text(encoding="utf-8")
    default = re.search(r'VENV="\$\{CONSISID_VENV:-([^}]+)\}"', run)
    main_command = re.search(r"python3 -m venv (\S+) && (\S+)/bin/pip install", (REPO / "README.md").read_text(encoding="utf-8"))
    assert default and main_command, "tests/run.sh's CONSISID_VENV default or the README's main command moved"
    assert default.group(1).strip("./") != main_command.group(1).strip("./")


def test_readme_code_layout_names_every_part_of_the_package():
    """The README's Code layout section lists each sub-package and module of consisid_core (and no removed one)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Code layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"([a-z_]+(?:/|\.py))", section))
    core = REPO / "consisid_core"
    parts = {p.name + "/" for p in core.iterdir() if (p / "__init__.py").is_file()}
    parts |= {p.name for p in core.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert parts - named == set(), "add these to the README's Code layout section"
    listed = set(re.findall(r"^  ([a-z_]+/)", section, flags=re.MULTILINE))  # the consisid_core/ block's entries
    assert listed <= parts, f"the README lists sub-packages that are gone: {listed - parts}"
