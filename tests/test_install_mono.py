"""scripts/install_mono.sh (run by scripts/setup.sh): mcs and mono for C# code generation, idempotent.

apt-get and id are stand-ins on a PATH of their own (a log of the calls, a package list that may be
missing), so the tests see every branch without touching the machine's packages.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_mono.sh"
INSTALL = "install -y -qq --no-install-recommends mono-mcs mono-runtime"
INSTALLING = ("[setup] installing mono-mcs and mono-runtime, for C# code generation (language: csharp)\n"
              "[setup] installed mcs and mono\n")


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + body)
    path.chmod(0o755)


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A PATH with a fake apt-get (logs its arguments; `install` fails until `update` ran, if the lists
    are missing, and puts mcs and mono on the PATH when it succeeds) and a fake id (uid from a file)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (tmp_path / "uid").write_text("0")
    _tool(folder, "id", f'cat "{tmp_path}/uid"\n')
    _tool(folder, "apt-get", f"""echo "$*" >> "{tmp_path}/log"
case "$1" in
  update) rm -f "{tmp_path}/no-lists" ;;
  install) [ -e "{tmp_path}/no-lists" ] && exit 100
           for t in mcs mono; do printf '#!/bin/sh\\n' > "{folder}/$t"; chmod +x "{folder}/$t"; done ;;
esac
""")
    return folder


def _run(tools: Path) -> tuple[int, str, str, list[str]]:
    done = subprocess.run(["/bin/bash", str(SCRIPT)], env={"PATH": str(tools)}, capture_output=True, text=True,
                          timeout=60, check=False)
    log = tools.parent / "log"
    return done.returncode, done.stdout, done.stderr, log.read_text().splitlines() if log.exists() else []


def test_installs_once_then_does_nothing(tools: Path) -> None:
    assert _run(tools) == (0, "", INSTALLING, [INSTALL])
    assert _run(tools) == (0, "", "", [INSTALL])  # the second call finds both and is silent


def test_updates_the_package_lists_only_when_the_install_fails(tools: Path) -> None:
    (tools.parent / "no-lists").touch()
    assert _run(tools) == (0, "", INSTALLING, [INSTALL, "update -qq", INSTALL])


def test_only_one_of_the_two_installed_still_installs(tools: Path) -> None:
    _tool(tools, "mono", "")
    assert _run(tools) == (0, "", INSTALLING, [INSTALL])


def test_without_root_it_says_what_csharp_needs_and_goes_on(tools: Path) -> None:
    (tools.parent / "uid").write_text("1000")
    assert _run(tools) == (0, "", "[setup] mono is not installed: code_tests with language csharp will need it; "
                           "apt-get install mono-mcs mono-runtime\n", [])


def test_a_failing_install_fails_the_setup(tools: Path) -> None:
    (tools / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    code, out, err, _ = _run(tools)
    assert (code, out, err) == (100, "", INSTALLING.splitlines(keepends=True)[0])


def test_the_setup_runs_it() -> None:
    setup = (SCRIPT.parent / "setup.sh").read_text().splitlines()
    assert "scripts/install_mono.sh" in setup
