"""scripts/install_chromium.sh (run by scripts/setup.sh): chromium for the HTML report's browser tests,
idempotent and quiet.

apt-get and id are stand-ins on a PATH of their own (a log of the calls, a package list that may be
missing), so the tests see every branch without touching the machine's packages.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_chromium.sh"
INSTALL = "install -y -qq --no-install-recommends chromium"
INSTALLING = "[setup] installing chromium, the headless browser of the HTML report's tests (about 20 s, 300 MB)\n"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + body)
    path.chmod(0o755)


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A PATH with a fake apt-get (logs its arguments; `install` fails until `update` ran, if the lists
    are missing, and puts a chromium on the PATH when it succeeds) and a fake id (uid from a file)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (tmp_path / "uid").write_text("0")
    _tool(folder, "id", f'cat "{tmp_path}/uid"\n')
    _tool(folder, "apt-get", f"""echo "$*" >> "{tmp_path}/log"
case "$1" in
  update) rm -f "{tmp_path}/no-lists" ;;
  install) [ -e "{tmp_path}/no-lists" ] && exit 100
           printf '#!/bin/sh\\n' > "{folder}/chromium"; chmod +x "{folder}/chromium" ;;
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
    assert _run(tools) == (0, "", "", [INSTALL])  # the second call finds chromium and is silent


def test_updates_the_package_lists_only_when_the_install_fails(tools: Path) -> None:
    (tools.parent / "no-lists").touch()
    assert _run(tools) == (0, "", INSTALLING, [INSTALL, "update -qq", INSTALL])


def test_without_root_it_says_the_browser_tests_will_be_skipped_and_installs_nothing(tools: Path) -> None:
    (tools.parent / "uid").write_text("1000")
    assert _run(tools) == (0, "", "[setup] chromium is not installed: the HTML report's browser tests will be "
                           "skipped; apt-get install chromium\n", [])


def test_a_failing_install_fails_the_setup(tools: Path) -> None:
    (tools / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    code, out, err, _ = _run(tools)
    assert (code, out, err) == (100, "", INSTALLING)


def test_the_setup_runs_it() -> None:
    setup = (SCRIPT.parent / "setup.sh").read_text().splitlines()
    assert "scripts/install_chromium.sh" in setup
