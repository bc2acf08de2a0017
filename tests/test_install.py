"""install.py: onnxruntime choice both ways, protected packages, idempotence; a real fresh-venv run (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_install():
    spec = importlib.util.spec_from_file_location("consisid_install", os.path.join(REPO, "install.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


install = _load_install()

INSIGHTFACE_REQUIRES = [
    "numpy", "onnx>=1.13", "onnxruntime", "opencv-python", "tqdm", "requests", "scipy", "scikit-image",
    'PySide6-Essentials>=6.5; extra == "gui"', 'av>=12; extra == "privateframe"',
]


# ---------------------------------------------------------------- pure logic


@pytest.mark.parametrize(
    "cuda, installed, ensure, uninstall, reinstall",
    [
        (True, {}, "onnxruntime-gpu", [], False),
        (True, {"onnxruntime": "1.32.0"}, "onnxruntime-gpu", ["onnxruntime"], False),
        (True, {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}, "onnxruntime-gpu", ["onnxruntime"], True),
        (True, {"onnxruntime-gpu": "1.31.1"}, None, [], False),
        (False, {}, "onnxruntime", [], False),
        (False, {"onnxruntime": "1.32.0"}, None, [], False),
        (False, {"onnxruntime-gpu": "1.31.1"}, None, [], False),  # a user's own choice is kept
        (True, {"onnxruntime-directml": "1.20"}, None, [], False),
    ],
)
def test_plan_onnxruntime(cuda, installed, ensure, uninstall, reinstall):
    full = {name: installed.get(name) for name in ("onnxruntime", "onnxruntime-gpu") + install.ORT_OTHER}
    plan = install.plan_onnxruntime(cuda, full)
    assert (plan.ensure, plan.uninstall, plan.reinstall) == (ensure, uninstall, reinstall)
    assert plan.reason


def test_constraints_freeze_torch_and_numpy_major():
    lines = install.constraints_for({"torch": "2.14.1+cu130", "torchvision": "0.29.1", "torchaudio": None}, "1.26.4")
    assert lines == ["torch==2.14.1+cu130", "torchvision==0.29.1", "numpy>=1,<2"]
    assert install.constraints_for({"torch": None}, None) == []


def test_insightface_dependencies_drop_onnxruntime_and_extras():
    kept = install.dependencies_without(INSIGHTFACE_REQUIRES, ("onnxruntime", "onnxruntime-gpu"))
    assert kept == ["numpy", "onnx>=1.13", "opencv-python", "tqdm", "requests", "scipy", "scikit-image"]


def test_read_requirements_skips_comments_and_options(tmp_path):
    path = tmp_path / "req.txt"
    path.write_text("# comment\n-r other.txt\ndiffusers>=0.33.0  # why\n\nonnxruntime\ntorch\n", encoding="utf-8")
    assert install.read_requirements(str(path)) == ["diffusers>=0.33.0", "onnxruntime", "torch"]
    assert install.requirement_name("Pillow>=10; python_version>'3'") == "pillow"


def test_cuda_decision_can_be_forced(monkeypatch):
    monkeypatch.setenv(install.CUDA_ENV, "1")
    assert install.cuda_usable()[0] is True
    monkeypatch.setenv(install.CUDA_ENV, "0")
    assert install.cuda_usable()[0] is False


def test_the_repository_requirements_never_name_torch():
    names = {install.requirement_name(r) for r in install.read_requirements(os.path.join(REPO, "requirements.txt"))}
    assert not names & {"torch", "torchvision", "torchaudio"}


# ---------------------------------------------------------------- orchestration with a simulated pip


class FakePip:
    """A pip stand-in with an installed-package table: dry runs write a report, installs/uninstalls update it."""

    def __init__(self, installed: dict[str, str], upgrade_torch: bool = False, refuse: bool = False,
                 refuse_with: str | None = None):
        self.installed = {install.canonical(k): v for k, v in installed.items()}
        self.commands: list[list[str]] = []
        self.constraints: list[str] = []
        self.upgrade_torch = upgrade_torch
        self.refuse = refuse
        self.refuse_with = refuse_with  # the resolver fails whenever this package is part of the request

    def versions(self, names):
        return {name: self.installed.get(install.canonical(name)) for name in names}

    def requires(self, name):
        return INSIGHTFACE_REQUIRES if install.canonical(name) in self.installed else None

    def __call__(self, args):
        self.commands.append(list(args))
        args = list(args)
        if args[0] == "uninstall":
            for name in args[2:]:
                self.installed.pop(install.canonical(name), None)
            return subprocess.CompletedProcess(args, 0, "", "")
        report = None
        requirements = []
        i = 1
        force = False
        while i < len(args):
            item = args[i]
            if item == "--report":
                report, i = args[i + 1], i + 2
                continue
            if item == "-c":
                with open(args[i + 1], encoding="utf-8") as handle:
                    self.constraints = handle.read().split()
                i += 2
                continue
            if item == "--force-reinstall":
                force = True
            elif not item.startswith("-"):
                requirements.append(item)
            i += 1
        if self.refuse or any(install.requirement_name(r) == self.refuse_with for r in requirements):
            return subprocess.CompletedProcess(args, 1, "", "ERROR: ResolutionImpossible: foo needs torch>=9")
        todo = []
        for requirement in requirements:
            name = install.requirement_name(requirement)
            version = requirement.split("==", 1)[1] if "==" in requirement else "1.0"
            if force or name not in self.installed:
                todo.append((name, version))
        if report:
            with open(report, "w", encoding="utf-8") as handle:
                json.dump({"install": [{"metadata": {"name": n, "version": v}} for n, v in todo]}, handle)
        elif todo:
            for name, version in todo:
                self.installed[name] = version
            if self.upgrade_torch:
                self.installed["torch"] = "9.9.9"
        return subprocess.CompletedProcess(args, 0, "", "")


def _installer(fake: FakePip, cuda: bool, tmp_path, lines=None):
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join(lines or ["diffusers>=0.33.0", "insightface>=0.7.3", "onnxruntime", "tqdm"]) + "\n")
    messages: list[str] = []
    runner = install.Installer(str(req), cuda, pip=fake, say=messages.append, versions=fake.versions,
                               requires=fake.requires, preview=True)
    return runner, messages


def _modifying(commands):
    return [c for c in commands if c[0] == "uninstall" or (c[0] == "install" and "--dry-run" not in c)]


def test_install_with_cuda_replaces_cpu_onnxruntime_and_is_idempotent(tmp_path):
    fake = FakePip({"torch": "2.14.1+cu130", "torchvision": "0.29.1", "numpy": "2.4.6", "onnxruntime": "1.32.0"})
    runner, messages = _installer(fake, True, tmp_path)
    runner.run()
    changed = _modifying(fake.commands)
    assert changed[0][-2:] == ["--no-deps", "insightface>=0.7.3"], "insightface goes in without its onnxruntime dependency"
    assert ["uninstall", "-y", "onnxruntime"] in changed
    final = changed[-1]
    assert "onnxruntime-gpu" in final and "onnxruntime" not in final and "insightface>=0.7.3" not in final
    assert {"numpy", "onnx>=1.13", "scipy"} <= set(final), "insightface's other dependencies are installed"
    assert "onnxruntime" not in fake.installed and fake.installed["onnxruntime-gpu"]
    assert fake.installed["torch"] == "2.14.1+cu130"
    assert {"torch==2.14.1+cu130", "torchvision==0.29.1", "numpy>=2,<3"} <= set(fake.constraints)
    assert not any("torch" in part for c in changed for part in c if not part.startswith(("-", "/")) and part != "-c")

    fake.commands.clear()
    runner, messages = _installer(fake, True, tmp_path)
    runner.run()
    assert _modifying(fake.commands) == [] and "Nothing to install" in messages[-1]


def test_install_without_cuda_uses_cpu_onnxruntime_and_is_idempotent(tmp_path):
    fake = FakePip({"torch": "2.13.0+cpu"})
    runner, _ = _installer(fake, False, tmp_path)
    runner.run()
    changed = _modifying(fake.commands)
    assert "onnxruntime" in changed[-1] and "onnxruntime-gpu" not in changed[-1]
    assert fake.installed["onnxruntime"] and "onnxruntime-gpu" not in fake.installed
    fake.commands.clear()
    runner, messages = _installer(fake, False, tmp_path)
    runner.run()
    assert _modifying(fake.commands) == [] and "Nothing to install" in messages[-1]


def test_both_onnxruntimes_installed_with_cuda_restores_the_gpu_files(tmp_path):
    fake = FakePip({"torch": "2.14.1", "onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1", "insightface": "2.1",
                    "diffusers": "0.42.1", "tqdm": "4.70", "numpy": "2.4", "onnx": "1.23", "opencv-python": "4.14",
                    "requests": "2", "scipy": "1", "scikit-image": "0.26"})
    runner, _ = _installer(fake, True, tmp_path)
    runner.run()
    changed = _modifying(fake.commands)
    assert changed[0] == ["uninstall", "-y", "onnxruntime"]
    assert changed[1][-3:] == ["--force-reinstall", "--no-deps", "onnxruntime-gpu==1.31.1"]
    assert len(changed) == 2


def test_a_torch_change_is_detected_and_fails_the_install(tmp_path):
    fake = FakePip({"torch": "2.13.0"}, upgrade_torch=True)
    runner, _ = _installer(fake, False, tmp_path)
    with pytest.raises(install.InstallError, match=r"torch 2.13.0 -> 9.9.9"):
        runner.run()


def test_a_resolver_conflict_stops_before_installing(tmp_path):
    fake = FakePip({"torch": "2.13.0"}, refuse=True)
    runner, _ = _installer(fake, False, tmp_path)
    with pytest.raises(install.InstallError, match="cannot be met without changing torch"):
        runner.run()
    assert _modifying(fake.commands) == []


def test_a_failing_check_of_the_main_requirements_changes_nothing(tmp_path):
    """insightface and the CPU onnxruntime removal used to happen before the main dry run: now nothing does."""
    fake = FakePip({"torch": "2.14.1", "onnxruntime": "1.32.0"}, refuse_with="diffusers")
    runner, _ = _installer(fake, True, tmp_path)
    with pytest.raises(install.InstallError, match="nothing was installed"):
        runner.run()
    assert _modifying(fake.commands) == [] and fake.installed["onnxruntime"] == "1.32.0"
    assert "insightface" not in fake.installed


def test_symlinked_pack_checks_comfyuis_models_folder(tmp_path):
    """`python install.py` run inside custom_nodes/<symlink to the pack> checks ComfyUI's models/, not the target's."""
    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    (comfy / "models" / "consisid").mkdir(parents=True)
    real = tmp_path / "elsewhere" / "ComfyUI-ConsisID"
    real.mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "install.py"), real / "install.py")
    shutil.copytree(os.path.join(REPO, "consisid_core"), real / "consisid_core", ignore=shutil.ignore_patterns("__pycache__"))
    link = comfy / "custom_nodes" / "ComfyUI-ConsisID"
    link.symlink_to(real, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_DIR"}
    env["PWD"] = str(link)  # what a shell sets after `cd ComfyUI/custom_nodes/ComfyUI-ConsisID`
    done = subprocess.run([sys.executable, "-c", "import install; install.print_model_check(None)"], cwd=link,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"Model check of {comfy / 'models'} (the pack is in {comfy / 'custom_nodes'}"), first
    assert str(comfy / "models" / "consisid") in done.stdout and str(real.parent / "models") not in done.stdout


def test_install_refuses_a_plan_that_installs_torch(tmp_path):
    fake = FakePip({})
    runner, _ = _installer(fake, False, tmp_path, lines=["torchvision", "tqdm", "some-package-needing-torch"])
    original = fake.__call__

    def pip(args):  # the resolver wants torch for a dependency
        done = original(args)
        if "--report" in args:
            report = args[args.index("--report") + 1]
            with open(report, encoding="utf-8") as handle:
                data = json.load(handle)
            data["install"].append({"metadata": {"name": "torch", "version": "2.14.1"}})
            with open(report, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
        return done

    runner.pip = pip
    with pytest.raises(install.InstallError, match="would change torch==2.14.1"):
        runner.run()
    assert not any("torchvision" in part for c in fake.commands for part in c), "torch lines of requirements are ignored"


# ---------------------------------------------------------------- the real thing: a fresh venv with torch


@pytest.mark.slow
def test_fresh_venv_install_keeps_torch_and_second_run_changes_nothing(tmp_path):
    """python -m venv + pip install torch==2.13.0, then install.py twice (about 1.5 min with local wheels)."""
    if os.environ.get("CONSISID_SKIP_VENV_TEST") == "1":
        pytest.skip("CONSISID_SKIP_VENV_TEST=1")
    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    started = time.monotonic()
    torch_install = subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], capture_output=True, text=True, timeout=900)
    if torch_install.returncode != 0:
        pytest.skip(f"torch==2.13.0 could not be installed here: {torch_install.stderr[-300:]}")
    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    pack = comfy / "custom_nodes" / "ComfyUI-ConsisID"
    pack.mkdir()
    for name in ("install.py", "requirements.txt"):
        shutil.copy(os.path.join(REPO, name), pack / name)
    shutil.copytree(os.path.join(REPO, "consisid_core"), pack / "consisid_core", ignore=shutil.ignore_patterns("__pycache__"))

    def freeze():
        return subprocess.run([python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout

    before = freeze()
    torch_before = [line for line in before.splitlines() if line.startswith("torch==")]
    env = {k: v for k, v in os.environ.items() if k != install.CUDA_ENV}
    first = subprocess.run([python, str(pack / "install.py")], capture_output=True, text=True, timeout=1800, cwd=pack, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    after_first = freeze()
    assert [line for line in after_first.splitlines() if line.startswith("torch==")] == torch_before
    assert "diffusers==" in after_first and "insightface==" in after_first and "onnxruntime==" in after_first
    assert "torchvision" not in after_first
    assert "working providers: " in first.stdout and "CPUExecutionProvider" in first.stdout
    assert "ConsisID model check" in first.stdout and str(comfy / "models" / "consisid") in first.stdout
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    second = subprocess.run([python, str(pack / "install.py"), "--no-model-check"], capture_output=True, text=True,
                            timeout=600, cwd=pack, env=env)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "Nothing to install" in second.stdout
    assert freeze() == after_first, "the second run must change nothing"
    print(f"fresh venv: torch + two install.py runs in {time.monotonic() - started:.0f} s")
