"""scripts/install_{bubblewrap,mono,chromium}.sh (run by scripts/setup.sh, through scripts/apt_install.sh):
the Debian packages the sandbox, C# scoring and the HTML report's browser tests need, installed when
missing and apt-get can, idempotent and quiet.

apt-get and id are stand-ins on a PATH of their own (a log of the calls, a package list that may be
missing), so the tests see every branch without touching the machine's packages.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@dataclass(frozen=True)
class Package:
    script: str
    packages: str
    provides: tuple[str, ...]  # what a successful install puts on PATH
    installing: str  # everything a successful install says
    missing: str  # what it says without root or apt-get

    @property
    def install(self) -> str:
        return f"install -y -qq --no-install-recommends {self.packages}"


BUBBLEWRAP = Package("install_bubblewrap.sh", "bubblewrap", ("bwrap",),
                     "[setup] installing bubblewrap, the code sandbox's boundary\n",
                     "[setup] bubblewrap is not installed: code_tests will need root (unshare) or RUNNER_SANDBOX=weak; "
                     "apt-get install bubblewrap\n")
MONO = Package("install_mono.sh", "mono-mcs mono-runtime", ("mcs", "mono"),
               "[setup] installing mono-mcs and mono-runtime, for C# code generation (language: csharp)\n"
               "[setup] installed mcs and mono\n",
               "[setup] mono is not installed: code_tests with language csharp will need it; apt-get install "
               "mono-mcs mono-runtime\n")
CHROMIUM = Package("install_chromium.sh", "chromium", ("chromium",),
                   "[setup] installing chromium, the headless browser of the HTML report's tests (about 20 s, "
                   "300 MB)\n",
                   "[setup] chromium is not installed: the HTML report's browser tests will be skipped; apt-get "
                   "install chromium\n")
ALL = [BUBBLEWRAP, MONO, CHROMIUM]


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + body)
    path.chmod(0o755)


def _tools(tmp_path: Path, package: Package) -> Path:
    """A PATH with a fake apt-get (logs its arguments; `install` fails until `update` ran, if the lists
    are missing, and puts the package's commands on the PATH when it succeeds) and a fake id (uid from a
    file)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (tmp_path / "uid").write_text("0")
    _tool(folder, "id", f'cat "{tmp_path}/uid"\n')
    made = "; ".join(f"printf '#!/bin/sh\\\\n' > \"{folder}/{t}\"; chmod +x \"{folder}/{t}\"" for t in package.provides)
    _tool(folder, "apt-get", f"""echo "$*" >> "{tmp_path}/log"
case "$1" in
  update) rm -f "{tmp_path}/no-lists" ;;
  install) [ -e "{tmp_path}/no-lists" ] && exit 100
           {made} ;;
esac
""")
    return folder


def _run(package: Package, tools: Path) -> tuple[int, str, str, list[str]]:
    done = subprocess.run(["/bin/bash", str(SCRIPTS / package.script)], env={"PATH": str(tools)}, capture_output=True,
                          text=True, timeout=60, check=False)
    log = tools.parent / "log"
    return done.returncode, done.stdout, done.stderr, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("package", ALL, ids=lambda p: p.script)
def test_installs_once_then_does_nothing(package: Package, tmp_path: Path) -> None:
    tools = _tools(tmp_path, package)
    assert _run(package, tools) == (0, "", package.installing, [package.install])
    assert _run(package, tools) == (0, "", "", [package.install])  # the second call finds it and is silent


@pytest.mark.parametrize("package", ALL, ids=lambda p: p.script)
def test_updates_the_package_lists_only_when_the_install_fails(package: Package, tmp_path: Path) -> None:
    tools = _tools(tmp_path, package)
    (tmp_path / "no-lists").touch()
    assert _run(package, tools) == (0, "", package.installing, [package.install, "update -qq", package.install])


@pytest.mark.parametrize("package", ALL, ids=lambda p: p.script)
def test_without_root_it_says_what_goes_without_it_and_installs_nothing(package: Package, tmp_path: Path) -> None:
    tools = _tools(tmp_path, package)
    (tmp_path / "uid").write_text("1000")
    assert _run(package, tools) == (0, "", package.missing, [])


@pytest.mark.parametrize("package", ALL, ids=lambda p: p.script)
def test_a_failing_install_fails_the_setup(package: Package, tmp_path: Path) -> None:
    tools = _tools(tmp_path, package)
    (tools / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    code, out, err, _ = _run(package, tools)
    assert (code, out, err) == (100, "", package.installing.splitlines(keepends=True)[0])


@pytest.mark.parametrize("package", ALL, ids=lambda p: p.script)
def test_an_install_that_leaves_the_command_missing_fails(package: Package, tmp_path: Path) -> None:
    tools = _tools(tmp_path, package)
    (tools / "apt-get").write_text("#!/bin/sh\nexit 0\n")  # "succeeds", puts nothing on PATH
    code, out, err, _ = _run(package, tools)
    assert (code, out) == (1, "")
    assert err.endswith(f"[setup] {package.packages} installed, but {' or '.join(package.provides)} is not on PATH\n")


@pytest.mark.parametrize("package", ALL, ids=lambda p: p.script)
def test_the_setup_runs_it(package: Package) -> None:
    assert f"scripts/{package.script}" in (SCRIPTS / "setup.sh").read_text().splitlines()


def test_mono_with_only_one_of_its_two_commands_still_installs(tmp_path: Path) -> None:
    tools = _tools(tmp_path, MONO)
    _tool(tools, "mono", "")
    assert _run(MONO, tools) == (0, "", MONO.installing, [MONO.install])


@pytest.mark.parametrize("name", ["chromium-browser", "google-chrome"])
def test_another_name_of_the_browser_is_enough(name: str, tmp_path: Path) -> None:
    tools = _tools(tmp_path, CHROMIUM)
    _tool(tools, name, "")
    assert _run(CHROMIUM, tools) == (0, "", "", [])
