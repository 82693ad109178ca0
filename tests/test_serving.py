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
    at.text_input[0].set_value(str(allowed / "labeled")).run()
    at.button(key="export").click().run()
    from test_app_fakes import wait_for_job

    assert wait_for_job(at, project, "export").state == "done"
    assert project.export_within == [folder_policy(None, os.environ).read_roots]  # the engine was told
    assert (allowed / "labeled" / "manifest.csv").is_file()


def _current(at):
    from turtle_ui import session

    return session._open_project(at.session_state["folder"])


def test_served_scan_and_gallery_never_follow_a_link_out_of_the_allowed_folders(
    monkeypatch, make_image_tree, tmp_path: Path, turtle_home: Path
) -> None:
    from test_app_fakes import wait_for_job

    allowed = make_image_tree({"a": 3, "b": 3}, root=tmp_path / "allowed" / "shoot")
    private = make_image_tree({"secret": 2}, root=tmp_path / "private")
    (allowed / "a" / "peek.png").symlink_to(private / "secret" / "secret_000.png")
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(tmp_path / "allowed"))
    at = _open(open_app(monkeypatch, None), allowed)
    project = _current(at)
    wait_for_job(at, project, "scan")
    assert not at.exception
    assert [r.path for r in project.scan_result.images if "peek" in r.path] == []
    assert {s.path: s.reason for s in project.scan_result.skipped}["a/peek.png"].startswith(
        "a link to a place"
    )
    assert "Skipped files (1)" in [e.label for e in at.expander]
    # A discovery made earlier without the policy (say, by the command line) lists the link: the served
    # Clusters page (its real gallery, on the real snapshot) still shows no picture of it.
    import numpy as np

    from turtle_core.ingest.scan import scan_folder
    from turtle_core.state.discovery_result import DiscoveryResult

    free = scan_folder(allowed)
    n = len(free.images)
    labels = np.array([1 if r.path == "a/peek.png" else 0 for r in free.images], np.int32)
    assert n == 7 and labels.sum() == 1
    split = DiscoveryResult(
        free.images,
        labels,
        np.eye(2, dtype=np.float32)[labels],
        np.linspace(0, 1, n),
        2,
        0.5,
        {2: 0.5},
        {},
        ["effnet-lite0"],
        ["x"],
        0.0,
    )
    project.state.install_discovery(split)
    at.switch_page("pages/clusters.py").run()
    assert not at.exception
    assert [len(strip.value) for strip in at.get("image")] == [5]  # the link's own cluster shows none
    assert "No preview available." in texts(at)
    secret = next(r.content_hash for r in free.images if r.path == "a/peek.png")
    assert not list((turtle_home / "thumbnails").rglob(f"{secret}*"))  # never rendered


def test_served_checkpoints_and_ray_clusters_obey_the_policy(monkeypatch, tmp_path: Path) -> None:
    from turtle_core.embedding import ray_embed
    from turtle_ui.access import ALLOWED_RAY_ENV

    allowed = tmp_path / "allowed"
    project = FakeProject(allowed / "images")
    monkeypatch.setattr(ray_embed, "ray_installed", lambda: True)
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(allowed))
    at = open_app(monkeypatch, project)
    # No Ray address can be typed: the server would connect wherever a visitor says.
    assert "Ray cluster address" not in [widget.label for widget in at.text_input]
    assert "TURTLE_ALLOWED_RAY_ADDRESSES" in texts(at)
    at.segmented_control[0].set_value("fast").run()
    checkpoint = [t for t in at.text_input if t.key and t.key.startswith("ckpt:")][0]
    # A local-dir: folder is checked as the folder it names, not as a path under the working directory.
    checkpoint.set_value(f"local-dir:{tmp_path / 'elsewhere'}").run()
    assert "Checkpoint refused" in at.error[0].value and project.checkpoints == {}
    inside = f"local-dir:{allowed / 'models' / 'clip'}"
    [t for t in at.text_input if t.key and t.key.startswith("ckpt:")][0].set_value(inside).run()
    assert not at.error and list(project.checkpoints.values()) == [inside]
    assert folder_policy("0.0.0.0", {ALLOWED_FOLDERS_ENV: str(allowed)}).permits_checkpoint(inside)
    assert not folder_policy("0.0.0.0", {ALLOWED_FOLDERS_ENV: str(allowed)}).permits_checkpoint(
        "local-dir:models"  # relative: the server's working directory is not an allowed folder
    )

    monkeypatch.setenv(ALLOWED_RAY_ENV, "10.0.0.7:6379, local")
    at = open_app(monkeypatch, project)
    picker = at.selectbox(key=f"ray-address:{project.folder}")
    assert picker.options == ["this machine", "10.0.0.7:6379", "local"]
    picker.set_value("10.0.0.7:6379").run()
    assert at.session_state[f"run_choices:{project.folder}"].ray_address == "10.0.0.7:6379"
    policy = folder_policy("0.0.0.0", {ALLOWED_FOLDERS_ENV: str(allowed), ALLOWED_RAY_ENV: "10.0.0.7:6379"})
    assert policy.permits_ray("10.0.0.7:6379") and policy.permits_ray(None)
    assert not policy.permits_ray("evil.example.org:6379") and not policy.permits_ray("local")
    assert folder_policy("localhost", {}).permits_ray("anywhere:1")


def test_one_visitors_choices_never_reach_another_visitors_run(monkeypatch, tmp_path: Path) -> None:
    from turtle_core.embedding import ray_embed
    from turtle_core.embedding.backbones import PRESETS

    project = FakeProject(tmp_path / "allowed" / "images", discovered=False)
    monkeypatch.setattr(ray_embed, "ray_installed", lambda: True)
    bob = open_app(monkeypatch, project)  # Bob opens the project first, with its saved settings
    alice = open_app(monkeypatch, project)
    alice.segmented_control[0].set_value("fast").run()
    alice.text_input(key=f"ray-address:{project.folder}").set_value("10.0.0.7:6379").run()
    assert project.ray_address is None  # the shared project holds no visitor's Ray address

    bob.switch_page("pages/discover.py").run()
    assert "backbones: effnet-lite0" in texts(bob)
    bob.button(key="run_discovery").click().run()
    from test_app_fakes import wait_for_job

    wait_for_job(bob, project, "discover")
    run = project.discover_runs[-1]
    assert run["backbones"] == list(PRESETS["offline"]) and run["ray_address"] is None
    assert run["within"] is None  # on this machine only: the engine may read anywhere

    alice.switch_page("pages/discover.py").run()
    assert f"backbones: {', '.join(PRESETS['fast'])}" in texts(alice)
