"""Real-browser fixtures: a `streamlit run app.py` server on a free port, headless Debian Chromium, and
`AppRuns`, which follows the app's script runs so that a test waits for exactly the run it caused."""

from __future__ import annotations

import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks import _app_server as app_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = app_server.CHROMIUM
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
IDLE = app_server.IDLE

# Counts the websocket messages the page's JavaScript has received, so a wait can make sure the page
# has seen every message the browser's network layer reported.
_COUNT_FRAMES_JS = """
(() => {
  const Native = window.WebSocket;
  window.__framesIn = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => { window.__framesIn += 1; });
    }
  };
})();
"""


class AppServer(app_server.AppServer):
    """The app (or another `script`) for a test: the 200-image demo, so that a discovery fits CI's time."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, script: Path = ROOT / "app.py") -> None:
        super().__init__(home, {"TURTLE_DEMO_PER_CLASS": "20", **(env or {})}, script)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        super().wait_healthy(timeout)


class AppRuns:
    """The app's script runs, read from Streamlit's websocket messages (its own protobuf protocol).

    A fixed pause after an interaction raced the app: on a loaded machine the run it asks for can start
    seconds later, and the test went on with the previous page. `act` instead waits until the browser
    has sent the interaction's rerun request and a run that started after that request has finished."""

    def __init__(self, page) -> None:
        self.page = page
        self.t0 = time.monotonic()
        self.seq = 0  # orders every request and run event seen
        self.requests: list[tuple[int, str]] = []  # (seq, fragment id or "") of user rerun requests
        self.runs: dict[str, dict] = {}  # script run id -> start seq, fragments, end status, frame count
        self.frames_in = 0
        self.timeline: list[str] = []
        self.crashed = False
        page.on("websocket", self._watch)
        page.on("crash", self._crash)
        page.on("pageerror", lambda error: self.note(f"page error: {error}"))
        page.on("console", self._console)
        page.on("requestfailed", lambda request: self.note(f"request failed: {request.url[:200]}"))
        self.external_requests: list[str] = []  # the app must work offline: nothing beyond its server
        page.on("request", self._request)

    # --------------------------------------------------------------------------- websocket events
    def _watch(self, websocket) -> None:
        self.note(f"websocket opened {websocket.url}")
        websocket.on("framesent", self._sent)
        websocket.on("framereceived", self._received)
        websocket.on("close", lambda _ws: self.note("websocket closed"))

    def _request(self, request) -> None:
        local = urllib.parse.urlsplit(request.url).hostname in ("127.0.0.1", "localhost")
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and not local:
            self.external_requests.append(request.url)
            self.note(f"request to another host: {request.url[:200]}")

    def _crash(self, _page) -> None:
        self.crashed = True
        self.note("the page crashed (its renderer process died)")

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.note(f"console {message.type}: {message.text[:500]}")

    def note(self, line: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.t0:8.2f}  {line}")
        del self.timeline[:-5000]

    def _sent(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            return
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = BackMsg()
        message.ParseFromString(payload)
        if message.WhichOneof("type") != "rerun_script":
            return
        request = message.rerun_script
        self.seq += 1
        if request.is_auto_rerun:
            self.note(f"-> auto rerun of fragment {request.fragment_id[:8]}")
            return
        self.requests.append((self.seq, request.fragment_id))
        scope = f"fragment {request.fragment_id[:8]}" if request.fragment_id else "app"
        self.note(f"-> rerun request #{self.seq} ({scope}, page {request.page_script_hash[:8]})")

    def _received(self, payload: bytes | str) -> None:
        self.frames_in += 1
        if isinstance(payload, str):
            return
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = ForwardMsg()
        message.ParseFromString(payload)
        kind = message.WhichOneof("type")
        run = message.metadata.run
        if kind == "new_session":
            self.seq += 1
            fragments = list(run.fragment_ids)
            self.runs[run.script_run_id] = {
                "start": self.seq,
                "fragments": fragments,
                "status": None,
                "frames": None,
            }
            scope = f"fragments {[f[:8] for f in fragments]}" if fragments else "app"
            self.note(f"<- run {run.script_run_id[:8]} started #{self.seq} ({scope})")
        elif kind == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(message.script_finished)
            entry = self.runs.get(run.script_run_id)
            if entry is not None:
                entry["status"], entry["frames"] = status, self.frames_in
            self.note(f"<- run {run.script_run_id[:8]} {status}")
        elif kind == "auto_rerun":
            self.note(
                f"<- auto rerun every {message.auto_rerun.interval} s: {message.auto_rerun.fragment_id[:8]}"
            )

    # --------------------------------------------------------------------------- waiting
    def mark(self) -> int:
        return self.seq

    def _finished_since(self, mark: int) -> int | None:
        """Frame count at the end of a completed run that served the last request sent after `mark`."""
        requests = [request for request in self.requests if request[0] > mark]
        if not requests:
            return None
        sent, fragment = requests[-1]
        for entry in self.runs.values():
            if entry["start"] <= sent or entry["status"] in (None, "FINISHED_EARLY_FOR_RERUN"):
                continue
            # A request from inside a fragment is served by that fragment's run or by a full run
            # (a fragment may rerun the whole app); a full-app request only by a full run.
            if fragment or not entry["fragments"]:
                return int(entry["frames"])
        return None

    def wait(self, mark: int, what: str, timeout_ms: float = 60_000) -> None:
        """Wait until an interaction made after `mark` has been run by the app and the page shows it."""
        deadline = time.monotonic() + timeout_ms / 1000
        while (frames := self._finished_since(mark)) is None:
            if self.crashed:
                raise AssertionError(f"{what}: the browser page crashed")
            if time.monotonic() > deadline:
                sent = any(request[0] > mark for request in self.requests)
                problem = "its run did not finish" if sent else "the browser sent no rerun request"
                raise AssertionError(f"{what}: {problem} within {timeout_ms / 1000:.0f} s")
            self.page.wait_for_timeout(50)
        self.page.wait_for_function("n => window.__framesIn >= n", arg=frames, timeout=timeout_ms)
        self.page.wait_for_selector(IDLE, timeout=timeout_ms)
        # Two animation frames: React has committed what the run sent.
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def act(self, action: Callable[[], object], what: str, timeout_ms: float = 60_000) -> None:
        """Do `action` (a click, a key press…) and wait until the app has run it and the page shows it."""
        mark = self.mark()
        action()
        self.wait(mark, what, timeout_ms)


def save_failure(page, runs: AppRuns | None, server: AppServer | None, name: str) -> None:
    """Screenshot and timeline for a failed step: FAILED-<name>.png/.log under test-artifacts/screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{name}.png"), full_page=True, timeout=20_000)
    except Exception as error:  # the screenshot is a diagnosis aid; never hide the real failure
        print(f"could not save the failure screenshot: {error}", file=sys.stderr)
    (SCREENSHOTS / f"FAILED-{name}.log").write_text(run_report(page, runs, server, f"failed step: {name}"))
    # CI keeps only the terminal output: pytest shows this under "Captured stderr" of the failed test.
    print(run_report(page, runs, server, f"failed step: {name}", last=300), file=sys.stderr)


@contextmanager
def step(page, server, name: str) -> Iterator[None]:
    """Run one step of a browser test; on failure save FAILED-<name>.png and .log for the CI artifacts."""
    page.runs.note(f"== step {name}")
    try:
        yield
    except BaseException:
        save_failure(page, page.runs, server, name)
        raise


def run_report(
    page, runs: AppRuns | None, server: AppServer | None, title: str, last: int | None = None
) -> str:
    """The app's runs and browser errors (the `last` lines of them), then the tail of the server log."""
    lines = [title, f"url: {page.url}", "", "== app runs and browser errors (seconds)"]
    lines += (runs.timeline[-last:] if last else runs.timeline) if runs is not None else ["(not recorded)"]
    lines += ["", "== streamlit server log (tail)", server.log_tail() if server is not None else ""]
    return "\n".join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    for stale in SCREENSHOTS.glob("FAILED-*"):
        stale.unlink()
    server = AppServer(tmp_path_factory.mktemp("app_server"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, app_server: AppServer, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(30_000)
    context.add_init_script(_COUNT_FRAMES_JS)
    tab = context.new_page()
    tab.runs = AppRuns(tab)
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        # Steps save their own FAILED-<step> files; this catches failures outside any step.
        if report is not None and report.failed and not any(SCREENSHOTS.glob("FAILED-*.png")):
            save_failure(tab, tab.runs, app_server, request.node.name)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"runs-{request.node.name}.log").write_text(
            run_report(tab, tab.runs, app_server, f"test: {request.node.name}")
        )
        context.close()


def settle(page, timeout_ms: float = 30_000) -> None:
    """Wait until the app is idle (no run in progress). Use `page.runs.act` to wait for an interaction."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.wait_for_function(
        """() => [...document.images].every(image => image.complete)
                 && !document.querySelector("[data-testid='stSkeleton']")"""
    )
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=True)
    return path
