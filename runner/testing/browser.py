"""A real headless browser for tests and benchmarks: Chromium driven over the DevTools protocol on a
pipe (`--remote-debugging-pipe`: the browser reads commands on fd 3 and writes on fd 4, each message
JSON ended by a NUL byte), so no port is opened and no driver library is needed.

`load(path)` opens a file with the network switched off (emulated offline, every host name
unresolvable, a proxy that refuses), and returns what a person would see go wrong: console errors,
uncaught exceptions, and every URL the page asked for that is not the file itself. `evaluate` runs a
script in the page; `screenshot` returns a PNG of the whole page.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser on PATH (Debian's package installs `chromium`; scripts/install_chromium.sh does)."""
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


class Chromium:
    def __init__(self, executable: str | None = None, *, width: int = 1280, height: int = 1600,
                 timeout_s: float = 30.0) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("no chromium on PATH (scripts/install_chromium.sh installs it)")
        self.timeout_s = timeout_s
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(prefix="runner-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds_3_and_4() -> None:
            # Copied above 10 first, so putting one in place cannot overwrite the other.
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
             f"--user-data-dir={self._profile.name}", "--proxy-server=127.0.0.1:9",
             "--host-resolver-rules=MAPPING * ~NOTFOUND", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=fds_3_and_4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("Browser.close", session=False, wait=False)
                self.proc.wait(timeout=10)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        os.close(self._to_browser)
        self._profile.cleanup()

    def _read(self) -> None:
        buf = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            self._replies[message["id"]] = message
                            self._lock.notify_all()
                    else:
                        self._events.put(message)
        with self._lock:
            self._lock.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True,
             wait: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            while self._next_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError(f"no reply to {method} from chromium")
                self._lock.wait(left)
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def load(self, path: Path, *, scripts: bool = True) -> Page:
        """Open the file offline (with the page's own scripts off, if not `scripts`); returns once its load
        event fired, with what went wrong on the way."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")
        self.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1})
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        self.send("Emulation.setScriptExecutionDisabled", {"value": not scripts})
        url = path.resolve().as_uri()
        page = Page(self, url)
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BrowserError(f"{url} did not finish loading in {self.timeout_s:.0f} s") from None
            page.observe(event)
            if event.get("method") == "Page.loadEventFired":
                break
        page.drain()
        return page


class Page:
    def __init__(self, browser: Chromium, url: str) -> None:
        self.browser, self.url = browser, url
        self.errors: list[str] = []  # console errors and uncaught exceptions
        self.requests: list[str] = []  # every URL asked for, the page's own included

    def observe(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])

    def drain(self) -> None:
        """Take the events that arrived so far (errors logged after the load event count too)."""
        while True:
            try:
                self.observe(self.browser._events.get_nowait())
            except queue.Empty:
                return

    @property
    def outside_requests(self) -> list[str]:
        """Requests for anything but the file itself and inline data: what an offline page must not make."""
        return [u for u in self.requests if u != self.url and not u.startswith(("data:", "about:"))]

    def evaluate(self, expression: str) -> Any:
        reply = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                       "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression!r}: {reply['exceptionDetails'].get('text')}")
        self.drain()
        return reply["result"].get("value")

    def screenshot(self, target: Path, *, full_page: bool = False) -> int:
        """Write a PNG of the viewport (or the whole page); returns its size in bytes."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.browser.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000),
                              "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.browser.send("Page.captureScreenshot", params)["data"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return len(data)
