"""Install the ConsisID node pack's Python dependencies into the running interpreter, safely.

ComfyUI-Manager runs this file from the pack folder with ComfyUI's Python; users can run it by hand:
`python install.py`. What it guarantees:
- torch, torchvision and torchaudio are never installed, upgraded or downgraded, and numpy keeps its
  major version: pip runs with a constraints file pinning them, one dry run of the whole set passes
  before anything is changed (insightface, onnxruntime swaps included), and the versions are compared
  before and after;
- onnxruntime: `onnxruntime-gpu` when torch can use CUDA (the CPU `onnxruntime` package is removed
  because both install into the same `onnxruntime/` folder), else the CPU package; insightface is
  installed without its `onnxruntime` dependency so it cannot bring the CPU package back;
- it prints the ONNX execution providers that really work and the model-file check of ComfyUI's models/
  (found from the pack's place in custom_nodes/, a symlinked pack folder as the shell sees it);
- exit code 0 when the install worked, even with model weights missing (they are downloaded
  separately); 1 only when the install itself failed;
- a second run installs nothing.
Only the standard library is used: nothing else can be assumed before the install.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Sequence

PACK_DIR = os.path.dirname(os.path.abspath(__file__))
PROTECTED = ("torch", "torchvision", "torchaudio")
ORT_CPU = "onnxruntime"
ORT_GPU = "onnxruntime-gpu"
# Other onnxruntime builds a user may have chosen on purpose (DirectML, OpenVINO, ROCm, Apple...): kept as they are.
ORT_OTHER = ("onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-rocm", "onnxruntime-silicon", "onnxruntime-qnn")
INSIGHTFACE = "insightface"
CUDA_ENV = "CONSISID_INSTALL_CUDA"  # "1"/"0" forces the CUDA decision (tests, unusual setups)

PROBE_SCRIPT = os.path.join(PACK_DIR, "consisid_core", "onnx_probe.py")  # run as a file: needs no package


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    """The distribution name at the start of a requirement line ('' for options/blank)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return canonical(match.group(1)) if match else ""


def read_requirements(path: str) -> list[str]:
    """Requirement lines without comments, blank lines or pip options."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith(("#", "-")):
                lines.append(line)
    return lines


def installed_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed version per distribution name (None when absent)."""
    result: dict[str, str | None] = {}
    for name in names:
        try:
            result[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            result[name] = None
    return result


def constraints_for(protected: dict[str, str | None], numpy_version: str | None) -> list[str]:
    """pip constraints that freeze torch & co. at their installed versions and numpy at its major version."""
    lines = [f"{name}=={version}" for name, version in protected.items() if version]
    if numpy_version:
        major = int(numpy_version.split(".")[0])
        lines.append(f"numpy>={major},<{major + 1}")
    return lines


@dataclass
class OrtPlan:
    """What to do with onnxruntime: packages to remove first, then the package to make sure of."""

    ensure: str | None  # distribution to install if missing (None: leave as is)
    uninstall: list[str] = field(default_factory=list)
    reinstall: bool = False  # force-reinstall `ensure` (its files were shared with a removed package)
    reason: str = ""


def plan_onnxruntime(cuda_usable: bool, installed: dict[str, str | None]) -> OrtPlan:
    """Choose the onnxruntime package for this machine, given which variants are installed now."""
    have = {name for name, version in installed.items() if version}
    others = sorted(have & set(ORT_OTHER))
    if others:
        return OrtPlan(None, reason=f"keeping {', '.join(others)} (installed on purpose)")
    if cuda_usable:
        if ORT_CPU in have:
            return OrtPlan(ORT_GPU, uninstall=[ORT_CPU], reinstall=ORT_GPU in have,
                           reason="CUDA is usable: the CPU onnxruntime would shadow onnxruntime-gpu, replacing it")
        if ORT_GPU in have:
            return OrtPlan(None, reason="CUDA is usable and onnxruntime-gpu is installed")
        return OrtPlan(ORT_GPU, reason="CUDA is usable: installing onnxruntime-gpu")
    if have & {ORT_CPU, ORT_GPU}:
        return OrtPlan(None, reason="no CUDA: keeping the installed onnxruntime (" + ", ".join(sorted(have)) + ")")
    return OrtPlan(ORT_CPU, reason="no CUDA: installing the CPU onnxruntime")


def dependencies_without(requires: Sequence[str] | None, drop: Sequence[str]) -> list[str]:
    """A package's Requires-Dist without extras-only entries and without the named packages."""
    kept = []
    for item in requires or []:
        if "extra ==" in item.replace('"', "").replace("'", "") or "extra==" in item:
            continue
        if requirement_name(item) in {canonical(d) for d in drop}:
            continue
        kept.append(item)
    return kept


def installed_requires(name: str) -> list[str] | None:
    """Requires-Dist of an installed distribution (None when it is not installed)."""
    try:
        return metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return None


def pip_supports_report() -> bool:
    """pip >= 22.2 has `install --dry-run --report` (checked so old pips still install, only without the preview)."""
    try:
        major, minor = (int(x) for x in metadata.version("pip").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (22, 2)


def cuda_usable(python: str = sys.executable) -> tuple[bool, str]:
    """Whether torch in this interpreter sees a CUDA device (CONSISID_INSTALL_CUDA overrides)."""
    forced = os.environ.get(CUDA_ENV)
    if forced in ("0", "1"):
        return forced == "1", f"forced by {CUDA_ENV}={forced}"
    probe = "import torch, sys; sys.stdout.write('1' if torch.cuda.is_available() else '0')"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"torch could not be asked ({exc})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"torch does not import ({last})"
    return done.stdout.strip() == "1", "torch.cuda.is_available()"


class InstallError(Exception):
    """The install cannot go on; the message says why and what to do."""


PipRunner = Callable[[list], "subprocess.CompletedProcess"]


def run_pip(args: list) -> subprocess.CompletedProcess:
    """`python -m pip <args>` with the running interpreter, output captured."""
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


class Installer:
    """The install steps; `pip` can be replaced (tests), everything else is real."""

    def __init__(self, requirements: str, cuda: bool, pip: PipRunner = run_pip, say: Callable[[str], None] = print,
                 dry_run: bool = False, versions: Callable = installed_versions, requires: Callable = installed_requires,
                 preview: bool | None = None):
        self.requirements = requirements
        self.cuda = cuda
        self.pip = pip
        self.say = say
        self.dry_run = dry_run
        self.versions = versions
        self.requires = requires
        self.preview = pip_supports_report() if preview is None else preview
        self.changed: list[str] = []  # pip commands that modified the environment
        self.planned = 0  # steps a dry run would have performed

    # -------------------------------------------------------------- pip helpers

    def _pip(self, args: list, what: str) -> subprocess.CompletedProcess:
        done = self.pip(args)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
            raise InstallError(f"{what} failed (pip exit code {done.returncode}):\n{tail}")
        return done

    def _planned(self, args: list, constraints: str | None, what: str) -> list[dict]:
        """Packages pip would install for `install <args>`, from a dry run (no change)."""
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "report.json")
            extra = ["-c", constraints] if constraints else []
            try:
                self._pip(["install", "--dry-run", "--quiet", "--report", report, *extra, *args], what)
            except InstallError as exc:
                raise InstallError(
                    f"{exc}\nThe requirements cannot be met without changing torch/torchvision/torchaudio or "
                    "numpy's major version, so nothing was installed. Install a matching version of the package "
                    "named above by hand, or update ComfyUI's environment first."
                ) from None
            with open(report, encoding="utf-8") as handle:
                return json.load(handle).get("install", [])

    def _check_whole_set(self, requirements: list, constraints: str) -> None:
        """One dry run of everything this install will add (insightface with its dependencies), before any change."""
        if not self.preview or not requirements:
            return
        planned = self._planned(requirements, constraints, "checking the requirements")
        touched = [f"{p['metadata']['name']}=={p['metadata']['version']}" for p in planned
                   if requirement_name(p["metadata"]["name"]) in PROTECTED]
        if touched:
            raise InstallError(f"the requirements would change {', '.join(touched)}; refusing (the pack never touches "
                               "torch), nothing was installed")

    def _install(self, args: list, constraints: str | None, what: str) -> None:
        if self.preview:
            planned = self._planned(args, constraints, what)
            if not planned:
                return
            names = [f"{p['metadata']['name']}=={p['metadata']['version']}" for p in planned]
            touched = [n for n in names if requirement_name(n) in PROTECTED]
            if touched:
                raise InstallError(f"{what} would change {', '.join(touched)}; refusing (the pack never touches torch)")
            self.say(f"  {what}: {', '.join(names)}")
        else:
            self.say(f"  {what}: pip is older than 22.2, installing without a preview (constraints still apply)")
        self.planned += 1
        if self.dry_run:
            return
        extra = ["-c", constraints] if constraints else []
        command = ["install", *extra, *args]
        self._pip(command, what)
        self.changed.append("pip " + " ".join(command))

    # -------------------------------------------------------------- steps

    def run(self) -> None:
        before = self.versions(PROTECTED + ("numpy",))
        self.say("Protected packages: " + ", ".join(f"{k} {v or '-'}" for k, v in before.items()))
        requirements = read_requirements(self.requirements)
        skipped = [r for r in requirements if requirement_name(r) in PROTECTED]
        if skipped:
            self.say(f"  ignoring {', '.join(skipped)}: ComfyUI's own torch is used as it is")
        ort_lines = [r for r in requirements if requirement_name(r) in (ORT_CPU, ORT_GPU)]
        insight_lines = [r for r in requirements if requirement_name(r) == INSIGHTFACE]
        main = [r for r in requirements if requirement_name(r) not in PROTECTED + (ORT_CPU, ORT_GPU, INSIGHTFACE)]

        ort_installed = self.versions((ORT_CPU, ORT_GPU) + ORT_OTHER)
        plan = plan_onnxruntime(self.cuda, ort_installed)
        self.say(f"onnxruntime: {plan.reason}")

        with tempfile.TemporaryDirectory() as tmp:
            constraints = os.path.join(tmp, "constraints.txt")
            with open(constraints, "w", encoding="utf-8") as handle:
                handle.write("\n".join(constraints_for({k: before[k] for k in PROTECTED}, before["numpy"])) + "\n")

            ort_line = None
            if plan.ensure and not (plan.reinstall and ort_installed.get(plan.ensure)):
                ort_line = next((r for r in ort_lines if requirement_name(r) == plan.ensure), plan.ensure)
            # every step below changes the environment: check the whole set first, so a failure changes nothing
            self._check_whole_set(main + insight_lines + ([ort_line] if ort_line else []), constraints)

            # insightface without its `onnxruntime` requirement: its other dependencies join the main set
            for line in insight_lines:
                self._install(["--no-deps", line], constraints, "insightface (without its onnxruntime dependency)")
            if insight_lines:
                # None in a dry run (not installed yet): its dependencies are previewed on the real run
                main += dependencies_without(self.requires(INSIGHTFACE), (ORT_CPU, ORT_GPU))

            for name in plan.uninstall:
                self.say(f"  removing {name} (it shares the onnxruntime/ folder with {ORT_GPU})")
                if not self.dry_run:
                    self._pip(["uninstall", "-y", name], f"removing {name}")
                    self.changed.append(f"pip uninstall -y {name}")
            if ort_line:
                main.append(ort_line)
            elif plan.ensure:  # both onnxruntimes were installed: the GPU one's files must come back
                args = ["--force-reinstall", "--no-deps", f"{plan.ensure}=={ort_installed[plan.ensure]}"]
                self.say(f"  {plan.ensure}: reinstalling {ort_installed[plan.ensure]} to restore its files")
                if not self.dry_run:
                    self._pip(["install", "-c", constraints, *args], f"reinstalling {plan.ensure}")
                    self.changed.append("pip install " + " ".join(args))

            self._install(main, constraints, "requirements")

        after = self.versions(PROTECTED + ("numpy",))
        moved = [k for k in PROTECTED if before[k] != after[k]]
        if before["numpy"] and after["numpy"] and before["numpy"].split(".")[0] != after["numpy"].split(".")[0]:
            moved.append("numpy")
        if moved:
            raise InstallError(
                "protected packages changed: " + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in moved)
                + ". Reinstall your ComfyUI's versions of them."
            )
        if self.dry_run:
            self.say("Dry run: nothing was changed." if self.planned or plan.uninstall else
                     "Nothing to install: every requirement is already satisfied.")
        elif self.changed:
            self.say(f"Installed ({len(self.changed)} pip command(s)); torch/torchvision/numpy unchanged.")
        else:
            self.say("Nothing to install: every requirement is already satisfied.")


def print_providers(say: Callable[[str], None] = print) -> None:
    """Print which ONNX execution providers create a session for real (not only which are listed)."""
    done = subprocess.run([sys.executable, PROBE_SCRIPT], capture_output=True, text=True, timeout=300)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        say(f"ONNX providers: could not be checked ({(done.stderr or '').strip()[-200:]})")
        return
    if "error" in result:
        say(f"ONNX providers: {result['error']}")
        return
    say(f"onnxruntime {result['version']}: working providers: {', '.join(result['working']) or 'none'}")
    for provider, why in result.get("failed", {}).items():
        say(f"  {provider} is listed but does not work: {why}")
    if result.get("note"):
        say(f"  {result['note']}")


def print_model_check(models_dir: str | None, say: Callable[[str], None] = print) -> None:
    """Print the model-file table (never fails the install: weights are downloaded separately).

    Without `models_dir`, ComfyUI's models/ is found from the pack's place in custom_nodes/, through a
    symlinked pack folder as the user sees it ($PWD), not the symlink's target.
    """
    sys.path.insert(0, PACK_DIR)
    try:
        from consisid_core import model_status

        if models_dir is None:
            models_dir, how = model_status.locate_models_dir(PACK_DIR)
        else:
            how = "--models-dir"
        say(f"Model check of {models_dir} ({how}; another folder: --models-dir)")
        say(model_status.format_report(model_status.report_for_path(models_dir)))
    except Exception as exc:  # the check is information only
        say(f"Model check skipped: {exc}")
    finally:
        sys.path.remove(PACK_DIR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the install; 0 on success (even with weights missing), 1 when the install failed."""
    parser = argparse.ArgumentParser(description="Install the ConsisID node pack's dependencies safely.")
    parser.add_argument("--requirements", default=os.path.join(PACK_DIR, "requirements.txt"))
    parser.add_argument("--dry-run", action="store_true", help="show what would be installed, change nothing")
    parser.add_argument("--models-dir", default=None, help="ComfyUI's models folder for the model check")
    parser.add_argument("--no-model-check", action="store_true")
    args = parser.parse_args(argv)

    print(f"ConsisID install with {sys.executable} (Python {sys.version.split()[0]})")
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        print("error: pip is not available for this Python; install pip first (python -m ensurepip)")
        return 1
    cuda, why = cuda_usable()
    print(f"CUDA usable by torch: {'yes' if cuda else 'no'} ({why})")
    try:
        Installer(args.requirements, cuda, dry_run=args.dry_run).run()
    except InstallError as exc:
        print(f"error: {exc}")
        return 1
    print_providers()
    if not args.no_model_check:
        print()
        print_model_check(args.models_dir)
        print("(Missing weights do not fail the install: download them into the folders listed above.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
