"""A real Ray cluster of two nodes on this machine (127.0.0.1 only), for the tests and benchmarks:
`ray start --head` plus `ray start --address`, torn down by ending exactly the processes they started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _descendants(pids: list[int]) -> set[int]:
    """Every live process below `pids` (from /proc), so teardown ends exactly what we started."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class LocalCluster:
    """`ray start --head` plus `nodes - 1` more `ray start --address` nodes, `cpus` CPUs each, on
    127.0.0.1. The caller sets RAY_AUTH_MODE/RAY_AUTH_TOKEN in the environment first."""

    def __init__(self, nodes: int = 2, cpus: int = 1) -> None:
        self.node_count = nodes
        self.cpus = cpus
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # socket paths must stay short
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.ray_bin = str(Path(sys.executable).with_name("ray"))

    def _start_node(self, *args: str) -> None:
        log = open(os.path.join(self.temp_dir, f"node{len(self.nodes)}.log"), "wb")  # noqa: SIM115
        common = ["--block", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}", "--num-gpus=0"]
        common += ["--object-store-memory=100000000", "--disable-usage-stats"]
        self.nodes.append(
            subprocess.Popen([self.ray_bin, "start", *args, *common], stdout=log, stderr=subprocess.STDOUT)
        )

    def start(self, timeout_s: float = 120.0) -> None:
        import ray

        self._start_node(
            "--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}", "--include-dashboard=false"
        )
        deadline = time.monotonic() + timeout_s
        while not self._gcs_listening():
            self._check_alive(deadline)
            time.sleep(0.5)
        for _ in range(self.node_count - 1):
            self._start_node(f"--address={self.address}")
        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        try:
            while sum(node["Alive"] for node in ray.nodes()) < self.node_count:
                self._check_alive(deadline)
                time.sleep(0.5)
        finally:
            ray.shutdown()

    def _gcs_listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def _check_alive(self, deadline: float) -> None:
        dead = [node.args for node in self.nodes if node.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-2000:] for p in Path(self.temp_dir).glob("node*.log"))
            raise RuntimeError(f"the local Ray cluster did not come up ({dead or 'timeout'}):\n{logs}")

    def actor_pids(self, name: str) -> list[int]:
        return [pid for pid in _descendants([n.pid for n in self.nodes]) if name in _cmdline(pid)]

    def stop(self) -> None:
        """End the nodes and everything they started (`ray start --block` stops its node on SIGTERM;
        whatever is still alive after a grace period is killed), then remove the temp dir."""
        started = _descendants([node.pid for node in self.nodes])
        for node in self.nodes:
            with contextlib.suppress(OSError):
                node.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=max(0.1, deadline - time.monotonic()))
        for pid in started | _descendants([node.pid for node in self.nodes]) | {n.pid for n in self.nodes}:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def reload_ray_auth() -> None:
    """Ray reads the auth settings once per process; re-read them in case Ray was imported before."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
