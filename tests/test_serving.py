"""Serving: the app binds localhost by default; served to others, only allowed folders open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tomllib
from streamlit import config as st_config
from test_app_fakes import FakeProject, open_app, texts

from turtle_ui.access import ALLOWED_FOLDERS_ENV, demo_root, folder_policy, is_local_address

REPO = Path(__file__).resolve().parent.parent
LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_config_binds_localhost_and_keeps_the_file_watcher_off() -> None:
    with open(REPO / ".streamlit" / "config.toml", "rb") as handle:
        server = tomllib.load(handle)["server"]
    assert server["address"] == "localhost"
    assert server["fileWatcherType"] == "none"
    assert is_local_address(server["address"])


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of the sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.add(address)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's socket table")
def test_the_default_server_listens_on_loopback_only(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TURTLE_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port)]  # no address flag: the repository's config decides
    server = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.5)
        addresses = _listening_addresses(port)
        assert addresses, "no listening socket found"
        assert addresses <= LOOPBACK_HEX, addresses
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        (None, False),  # Streamlit's default: every interface
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("myhost.example.org", False),
    ],
)
def test_is_local_address(address: str | None, local: bool) -> None:
    assert is_local_address(address) is local


def test_folder_policy_resolves_paths_and_follows_links(tmp_path: Path) -> None:
    allowed = tmp_path / "data" / "a"
    (allowed / "photos").mkdir(parents=True)
    other = tmp_path / "data" / "ab"  # shares a prefix with the allowed folder
    other.mkdir()
    (allowed / "escape").symlink_to(tmp_path)  # a link inside that points outside
    (tmp_path / "link-to-a").symlink_to(allowed)  # a link outside that points inside
    env = {ALLOWED_FOLDERS_ENV: f"{allowed}{os.pathsep}{tmp_path / 'data' / 'b'}"}
    policy = folder_policy("0.0.0.0", env)
    assert policy.permits(allowed) and policy.permits(allowed / "photos")
    assert policy.permits(tmp_path / "link-to-a" / "photos")
    assert policy.permits(demo_root() / "animal-mnist-2000")
    for refused in (other, allowed / "escape", allowed / ".." / "ab", tmp_path, Path("/"), Path("/etc")):
        assert not policy.permits(refused), refused
    with pytest.raises(ValueError, match="cannot be opened here.*TURTLE_ALLOWED_FOLDERS"):
        policy.check(other)
    # The list applies on localhost too; without it, localhost opens anything and a served app only the demo.
    assert not folder_policy("localhost", env).permits(other)
    assert folder_policy("localhost", {}).permits(other)
    served = folder_policy(None, {})
    assert not served.permits(allowed) and served.permits(demo_root() / "x")
    assert "only the demo" in served.explanation


def _open(at, folder: str | Path):
    at.text_input(key="folder_input").set_value(str(folder))
    at.button[0].click()  # the form's "Open folder"
    return at.run()


def test_project_page_refuses_a_folder_outside_the_allow_list(
    monkeypatch, make_image_tree, tmp_path: Path
) -> None:
    allowed = make_image_tree({"a": 2, "b": 2}, root=tmp_path / "allowed" / "shoot")
    outside = make_image_tree({"a": 2, "b": 2}, root=tmp_path / "private")
    (tmp_path / "allowed" / "sneaky").symlink_to(outside)
    at = open_app(monkeypatch, None)
    _open(at, outside)  # opened before the list exists: it is now in the recent list
    assert at.session_state["folder"] == str(outside)

    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(tmp_path / "allowed"))
    at = open_app(monkeypatch, None)
    assert not at.exception
    assert not [b for b in at.button if b.key and b.key.startswith("recent-")]  # not even listed
    assert "(set by TURTLE_ALLOWED_FOLDERS)" in texts(at)
    for refused in (outside, tmp_path / "allowed" / "sneaky", tmp_path / "allowed" / ".." / "private"):
        _open(at, refused)
        assert not at.exception
        assert "cannot be opened here" in at.error[0].value
        assert at.session_state["folder"] is None
    _open(at, allowed)
    assert not at.exception and not at.error
    assert at.session_state["folder"] == str(allowed)
    monkeypatch.setenv("TURTLE_DEMO_PER_CLASS", "1")
    at.button(key="demo").click().run()  # the demo stays allowed
    assert not at.exception and not at.error
    assert Path(at.session_state["folder"]).parent == demo_root()


def test_a_served_app_without_a_list_opens_only_the_demo(monkeypatch, make_image_tree) -> None:
    folder = make_image_tree({"a": 2, "b": 2})
    previous = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = _open(open_app(monkeypatch, None), folder)
        assert not at.exception
        assert "only the demo can be used" in at.error[0].value
        assert at.session_state["folder"] is None
    finally:
        st_config.set_option("server.address", previous)


def test_checkpoints_and_export_destinations_stay_inside_the_allow_list(monkeypatch, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    project = FakeProject(allowed / "images")
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(allowed))
    at = open_app(monkeypatch, project)
    at.segmented_control[0].set_value("fast").run()
    checkpoint = [t for t in at.text_input if t.key and t.key.startswith("ckpt:")][0]
    checkpoint.set_value(str(tmp_path / "elsewhere" / "model.bin")).run()
    assert not at.exception
    assert "Checkpoint refused" in at.error[0].value
    assert project.checkpoints == {}

    at.switch_page("pages/export.py").run()
    assert not at.button(key="export").disabled  # the default, beside the images, is allowed
    at.text_input[0].set_value(str(tmp_path / "outside-export")).run()
    assert not at.exception
    assert "Cannot export there" in at.error[0].value
    assert at.button(key="export").disabled
