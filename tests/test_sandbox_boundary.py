"""The code sandbox's operating-system boundary (runner.scoring.sandbox_boundary).

What a plain interpreter inside each boundary can reach with no audit hook at all, which mode is
picked and when code_tests is refused (one line, exit 2, nothing written), that the runner's secrets
never reach a stored score, and that no process outlives a run, even when the runner is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from sandbox_modes import gone_within, mode_fixture, processes_mentioning  # noqa: F401 (`mode`)

from conftest import Project, base_experiment
from runner.cli import main
from runner.scoring.errors import ScorerError
from runner.scoring.sandbox import run_tests
from runner.scoring.sandbox_boundary import NOBODY, SandboxUnavailable, boundary, launcher_env
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

REPO_ROOT = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0
ADD = "def add(a, b):\n    return a + b\n"
INNER_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp/sandbox", "TMPDIR": "/tmp/sandbox", "LANG": "C.UTF-8"}


def _confined(mode: str) -> None:
    if mode == "weak":
        pytest.skip("the weak mode has no boundary: the audit hook alone")


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A folder outside /tmp and the homes (in the repository), which neither mode may show."""
    folder = Path(tempfile.mkdtemp(prefix=".sandbox-test-", dir=REPO_ROOT))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


# --- the boundary alone -----------------------------------------------------------------------------

# The host's folders of data and configuration, which no mode shows (/root may hold the interpreter).
HOST_FOLDERS = ("/etc", "/work", "/var", "/srv", "/mnt", "/opt", "/home", "/sys", "/boot", "/media")
OBSERVE = dedent("""\
    import json, os, socket, sys
    HOST_FOLDERS = @HOST_FOLDERS@
    port, runner_pid, secret, open_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

    def attempt(action):
        try:
            action()
            return "done"
        except OSError as exc:
            return type(exc).__name__

    print(json.dumps({
        "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "top": sorted(os.listdir("/")),
        "env": dict(os.environ),
        "caps": [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")][0],
        "connect": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close()),
        "read secret": attempt(lambda: open(secret).read()),
        "read runner environ": attempt(lambda: open(f"/proc/{runner_pid}/environ").read()),
        "read readable": attempt(lambda: open(os.path.join(os.path.dirname(secret), "notes.txt")).read()),
        "read /etc/passwd": attempt(lambda: open("/etc/passwd").read()),
        "host folders": {d: sorted(os.listdir(d)) for d in HOST_FOLDERS if os.path.isdir(d) and os.listdir(d)},
        "write world-writable dir": attempt(lambda: open(os.path.join(open_dir, "x"), "w").close()),
        "write /tmp": attempt(lambda: open("/tmp/x", "w").close()),
        "write scratch": attempt(lambda: open("inside", "w").close()),
    }))
""").replace("@HOST_FOLDERS@", repr(HOST_FOLDERS))


def test_the_boundary_alone_confines_a_plain_interpreter(mode: str, visible_dir: Path) -> None:
    # No audit hook here (python -c, not the child script): this is what the kernel enforces by itself.
    _confined(mode)
    secret = visible_dir / "key.pem"
    secret.write_text("secret")
    if ROOT:
        os.chown(secret, 1000, 1000)
    secret.chmod(0o600)
    (visible_dir / "notes.txt").write_text("anyone may read this")
    (visible_dir / "notes.txt").chmod(0o644)
    open_dir = visible_dir / "anyone-may-write"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    where = boundary()
    with socket.socket() as server, tempfile.TemporaryDirectory() as workdir:
        server.bind(("127.0.0.1", 0))
        server.listen()
        where.prepare_workdir(workdir)
        argv = where.command(workdir, ["-I", "-S", "-c", OBSERVE, str(server.getsockname()[1]), str(os.getpid()),
                                       str(secret), str(open_dir)], report_fd=-1)
        done = subprocess.run(argv, env=launcher_env(), cwd=workdir, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        # Written inside, but to a tmpfs of its own (SCRATCH_BYTES): nothing reaches the host's folder.
        assert os.listdir(workdir) == []
    uid = NOBODY if ROOT else os.getuid()
    assert (seen["uid"], seen["gid"], seen["groups"], seen["caps"]) == (uid, NOBODY if ROOT else os.getgid(), [],
                                                                        "0000000000000000")
    assert len(seen["pids"]) == 2  # the namespace's init and the interpreter: nothing of the host
    assert {k: v for k, v in seen["env"].items() if k != "PWD"} == INNER_ENV
    assert seen["connect"] != "done"
    assert seen["read runner environ"] != "done"
    assert seen["write world-writable dir"] != "done"  # hidden (bwrap) or on a read-only mount (unshare)
    assert seen["write /tmp"] != "done"
    assert seen["write scratch"] == "done"
    if ROOT:
        assert seen["read secret"] != "done"
    # Nothing of the host's data, in either mode: not even a file anyone may read, nor /etc.
    assert (seen["read readable"], seen["read /etc/passwd"]) == ("FileNotFoundError", "FileNotFoundError")
    assert seen["host folders"] == {}
    if mode == "bwrap":
        # Only what Python needs: no /etc, /home, /work or /var; /root only as the way to the interpreter.
        assert not {"etc", "home", "var", "work", "sys"} & set(seen["top"]), seen["top"]


# --- which mode, and refusing without one ---------------------------------------------------------


def _uid_and_pid_code() -> tuple[str, str]:
    code = f"import os\ndef seen():\n    return os.getuid(), os.getppid(), os.path.exists('/proc/{os.getpid()}')\n"
    return code, "assert seen() == EXPECTED, seen()\n"


def test_the_weak_mode_runs_with_the_audit_hook_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_SANDBOX", "weak")
    monkeypatch.setenv("RUNNER_SANDBOX_PATH", "/nonexistent")  # no tool needed, none looked for
    code, test = _uid_and_pid_code()
    # The runner's own uid, a child of the runner, and the runner's process in sight: no boundary...
    assert run_tests(code, test.replace("EXPECTED", repr((os.getuid(), os.getpid(), True)))).passed == 1
    # ...but the hook still refuses.
    assert run_tests("import os\nos.system('true')\n" + ADD, "assert add(1, 2) == 3").error == \
        "blocked: process creation"


def test_unset_it_picks_bwrap_when_bwrap_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_SANDBOX", "bwrap")
    try:
        boundary()
    except SandboxUnavailable as exc:
        pytest.skip(exc.problem)
    monkeypatch.delenv("RUNNER_SANDBOX")
    assert boundary().mode == "bwrap"
    code, test = _uid_and_pid_code()
    expected = (NOBODY if ROOT else os.getuid(), 1, False)  # bwrap's init is the parent; the runner unseen
    assert run_tests(code, test.replace("EXPECTED", repr(expected))).passed == 1


@pytest.mark.skipif(not ROOT, reason="the unshare mode needs root")
def test_as_root_without_bwrap_it_falls_back_to_unshare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("unshare", "setpriv"):
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed")
        (tools / name).symlink_to(found)
    monkeypatch.delenv("RUNNER_SANDBOX", raising=False)
    monkeypatch.setenv("RUNNER_SANDBOX_PATH", str(tools))
    assert boundary().mode == "unshare"
    code, test = _uid_and_pid_code()
    assert run_tests(code, test.replace("EXPECTED", repr((NOBODY, 1, False)))).passed == 1


def _code_experiment(project: Project, server_url: str) -> Path:
    project.write_dataset([{"id": "c1", "spec": "add", "tests": "assert add(1, 2) == 3"}])
    exp = base_experiment(f"{server_url}/v1")
    exp["prompts"] = {"variants": [{"name": "p", "text": "[{{ id }}] Write {{ spec }}"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": None}
    exp["sampling"] = {"temperature": 0.0, "max_tokens": 64}
    exp["repeats"] = 1
    exp["scorers"] = [{"type": "code_tests"}]
    return project.write(exp)


NO_BOUNDARY = ("code_tests runs the answers' code, but no sandbox boundary works on this machine (bwrap: not found; "
               f"unshare: {'not found' if ROOT else 'needs root'}); install bubblewrap (apt-get install "
               "bubblewrap), or run as root so unshare can be used; RUNNER_SANDBOX=weak runs it with the audit hook "
               "only")


def test_without_a_boundary_code_tests_is_refused_before_anything_runs(
        project: Project, fault_server: ThreadedFaultServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RUNNER_SANDBOX", raising=False)
    monkeypatch.setenv("RUNNER_SANDBOX_PATH", str(project.root / "no-tools-here"))
    path = _code_experiment(project, fault_server.url)
    capsys.readouterr()
    assert main(["run", str(path), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"runner: {path}: scorers[0]: {NO_BOUNDARY}"]
    assert fault_server.stats()["requests"] == 0
    assert not (project.root / "results").exists()


@pytest.mark.parametrize(("value", "problem"), [
    ("bwrap", "RUNNER_SANDBOX=bwrap does not work here (bwrap: not found); install bubblewrap (apt-get install "
              "bubblewrap), or unset RUNNER_SANDBOX to pick the mode automatically"),
    ("unshare", f"RUNNER_SANDBOX=unshare does not work here (unshare: {'not found' if ROOT else 'needs root'}); run "
                "the runner as root, with util-linux's unshare and setpriv, or unset RUNNER_SANDBOX to pick the mode "
                "automatically"),
    ("bubblewrap", "RUNNER_SANDBOX='bubblewrap' is not a sandbox mode; use bwrap, unshare or weak, or unset it"),
])
def test_a_forced_mode_that_cannot_work_is_one_line(project: Project, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], value: str,
                                                    problem: str) -> None:
    monkeypatch.setenv("RUNNER_SANDBOX", value)
    monkeypatch.setenv("RUNNER_SANDBOX_PATH", str(project.root / "no-tools-here"))
    path = _code_experiment(project, "http://127.0.0.1:9")
    capsys.readouterr()
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"runner: {path}: scorers[0]: code_tests runs the answers' code, but {problem}"]


def test_the_scorer_refuses_to_run_code_without_a_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the Python API, where no experiment was checked first: an error, never a silent weak run.
    from pydantic import TypeAdapter

    from runner.config.scorer_configs import ScorerConfig
    from runner.plan.dataset import Item
    from runner.scoring.scorers import build_scorers

    monkeypatch.delenv("RUNNER_SANDBOX", raising=False)
    monkeypatch.setenv("RUNNER_SANDBOX_PATH", "/nonexistent")
    (scorer,) = build_scorers([TypeAdapter(ScorerConfig).validate_python({"type": "code_tests"})], None)
    with pytest.raises(ScorerError) as caught:
        scorer.score(f"```python\n{ADD}```", "stop", Item("i1", {"id": "i1", "tests": "assert add(1, 2) == 3"}))
    problem = NO_BOUNDARY.removeprefix("code_tests runs the answers' code, but ")
    assert str(caught.value) == f"the code sandbox could not start: SandboxUnavailable: {problem}"


# --- the runner's secrets and the store --------------------------------------------------------------

LEAK = dedent("""\
    import os
    found = []
    for name in os.listdir("/proc"):
        try:
            found += open(f"/proc/{name}/environ").read().split("\\0")
        except OSError:
            pass
    found += [f"{k}={v}" for k, v in os.environ.items()]
    leaked = sorted({entry for entry in found if entry.startswith("RUNNER_TEST_API_KEY=")})
    raise Exception("leaked " + " ".join(leaked) if leaked else "found nothing")
""")


def test_the_runners_environment_never_reaches_a_stored_score(project: Project, fault_server: ThreadedFaultServer,
                                                              mode: str) -> None:
    # The case: the API key in the runner's environment, read through /proc/<parent>/environ and
    # put in the error text, which is stored with the scores. The runner is a real process here, started
    # with the key in its environment (what /proc/<pid>/environ shows is the environment it started with).
    _confined(mode)
    secret = f"sk-{uuid.uuid4().hex}"
    fault_server.set_plan(FaultPlan(script={"[c1]": (f"```python\n{LEAK}{ADD}```", "stop")}))
    path = _code_experiment(project, fault_server.url)
    env = {**os.environ, "RUNNER_TEST_API_KEY": secret, "RUNNER_SANDBOX": mode}
    done = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report"],
                          cwd=project.root, env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(project.store_path()) as db:
        (score_json,) = db.execute("SELECT score_json FROM scores").fetchone()
    assert json.loads(score_json)["detail"] == "runtime error: Exception: found nothing"
    for stored in (project.root / "results").rglob("*"):
        if stored.is_file():
            assert secret.encode() not in stored.read_bytes(), stored


# --- nothing outlives a run -------------------------------------------------------------------------


def _sleeper(marker: str) -> str:
    return f"import os, time\nos.mkdir({marker!r})\nos.chdir({marker!r})\ntime.sleep(60)\n" + ADD


def test_killing_the_runner_mid_run_leaves_no_process(mode: str, tmp_path: Path) -> None:
    # bwrap and unshare do not die with their parent by themselves: --die-with-parent and setpriv
    # --pdeathsig see to it, and the PID namespace takes everything inside with its init.
    marker = f"marker-{uuid.uuid4().hex}"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = tmp_path / "score_one.py"  # a file: the marker must not be in the runner's own command line
    script.write_text("from runner.scoring.sandbox import SandboxLimits, run_tests\n"
                      f"run_tests({_sleeper(marker)!r}, 'assert add(1, 2) == 3', SandboxLimits(timeout_s=60))\n")
    env: dict[str, Any] = {**os.environ, "RUNNER_SANDBOX": mode, "TMPDIR": str(scratch)}
    runner = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not processes_mentioning(marker):
            assert runner.poll() is None and time.monotonic() < deadline, "the sandboxed code never started"
            time.sleep(0.02)
        assert processes_mentioning(str(scratch)), "the launcher should be running, with its scratch folder"
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        assert gone_within(2.0, marker, str(scratch)) == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


# --- as a user other than root --------------------------------------------------------------------

AS_NOBODY = dedent("""\
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from runner.scoring.sandbox import run_tests
    from runner.scoring.sandbox_boundary import boundary
    code = "import os\\ndef seen():\\n    return [os.getuid(), os.getppid(), sorted(os.listdir('/'))]\\n"
    tests = "assert seen()[:2] == [65534, 1], seen()\\nassert 'etc' not in seen()[2]\\nopen(%r).read()" % sys.argv[2]
    result = run_tests(code, tests)
    print(json.dumps([boundary().mode, result.passed, result.error]))
""")


@pytest.mark.skipif(not ROOT or not Path("/usr/bin/python3").exists() or shutil.which("setpriv") is None,
                    reason="needs root (to become nobody), setpriv and the system's /usr/bin/python3")
def test_as_another_user_bwrap_adds_a_user_namespace_and_hides_that_users_files(visible_dir: Path) -> None:
    # The runner itself as nobody, with the system's Python (the test venv's lives under /root). Its own
    # file, which it may read outside, is out of sight inside: the view holds only what Python needs.
    mine = visible_dir / "nobodys-own.txt"
    mine.write_text("mine")
    os.chown(mine, NOBODY, NOBODY)
    mine.chmod(0o600)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-I"]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    importable = subprocess.run([*as_nobody, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                                 "import runner.scoring.sandbox", str(REPO_ROOT)], env=env, capture_output=True,
                                timeout=60, check=False)
    if importable.returncode != 0:
        pytest.skip(f"nobody cannot import the runner from {REPO_ROOT} with /usr/bin/python3")
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed")
    done = subprocess.run([*as_nobody, "-c", AS_NOBODY, str(REPO_ROOT), str(mine)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "bwrap", 2, f"FileNotFoundError: [Errno 2] No such file or directory: {str(mine)!r} at test 3"]


def test_a_tool_kept_under_tmp_is_reachable_in_the_boundary(mode: str, tmp_path: Path) -> None:
    # A checkout in /tmp keeps its .venv there, ruff's binary with it: the boundary's own small /tmp must
    # not hide a tool bound in at that path (it did, under bwrap, before the binds were mounted after it).
    _confined(mode)
    tool = tmp_path / "venv" / "bin" / "tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho reached\n")
    tool.chmod(0o755)
    where = boundary()
    with tempfile.TemporaryDirectory() as workdir:
        where.prepare_workdir(workdir)
        done = subprocess.run(where.tool_command(workdir, [str(tool)], ro_binds=[str(tool)]), capture_output=True,
                              timeout=30, env=launcher_env())
    assert (done.returncode, done.stdout, done.stderr) == (0, b"reached\n", b"")
