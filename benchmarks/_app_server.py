"""The real app in a browser's reach: `streamlit run app.py` on a free port with its own engine home, for the
browser benchmarks (the real demo) and, through `tests/browser/conftest.py`, the browser tests (a small one)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.common import REPO

CHROMIUM = os.environ.get("TURTLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"  # no script run in progress


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """`streamlit run <script>` (default: the app), headless, offline, with `home/turtle_home` as its engine
    home and `env` on top of that environment; its output goes to `home/streamlit.log`."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, script: Path = REPO / "app.py") -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "streamlit.log"
        environment = dict(os.environ)
        environment.pop("TURTLE_DEMO_PER_CLASS", None)  # the demo a new user gets (2,000 images)
        environment.update(
            {
                "TURTLE_HOME": str(home / "turtle_home"),
                "TURTLE_OFFLINE": "1",
                "HF_HUB_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(REPO),
            }
        )
        environment.update(env or {})
        command = [
            sys.executable, "-m", "streamlit", "run", str(script),
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", "127.0.0.1",
            "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
        self._log_handle = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=self._log_handle, stderr=subprocess.STDOUT
        )

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().decode().strip() == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"streamlit did not become healthy in {timeout} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, n_chars: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n_chars:]
        except OSError as error:
            return f"(no server log: {error})"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_handle.close()
