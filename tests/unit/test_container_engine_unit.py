"""The container engine seam without an engine: discovery order, errors, ulimits, image rebuilds."""

from __future__ import annotations

import http.server
import json
import os
import re
import resource
import socketserver
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

import chaoskit
from chaoskit import toolchain
from chaoskit.errors import PlatformError
from chaoskit.platforms.containers import engine, image


class _FakeEngine(http.server.BaseHTTPRequestHandler):
    """Answers /_ping and /version like a Docker Engine API (or 500 when told to)."""

    status = 200

    def do_GET(self) -> None:
        body = (json.dumps({"ApiVersion": "1.41", "Components": []}).encode()
                if self.path.endswith("/version") else b"OK")
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Broken(_FakeEngine):
    status = 500


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[Any]:
    """serve(path, broken=False) -> 'unix://path', a fake engine listening there."""
    servers: list[_UnixServer] = []

    def serve(path: Path, broken: bool = False) -> str:
        server = _UnixServer(str(path), _Broken if broken else _FakeEngine)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"unix://{path}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DOCKER_HOST, no Docker or rootful Podman socket, chaoskit's cache in tmp_path."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "DOCKER_SOCKET", tmp_path / "docker.sock")
    monkeypatch.setattr(engine, "PODMAN_ROOTFUL_SOCKET", tmp_path / "podman-root.sock")
    monkeypatch.setattr(toolchain, "CACHE", tmp_path / "cache")
    return tmp_path


def test_explicit_url_comes_first(nowhere: Path, fake_engine: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engine(nowhere / "docker.sock")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert engine.engine_url("unix:///explicit.sock") == "unix:///explicit.sock"


def test_docker_host_comes_before_any_socket(nowhere: Path, fake_engine: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engine(nowhere / "docker.sock")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert engine.engine_url() == "tcp://127.0.0.1:2375"


def test_docker_socket_that_answers_comes_before_podman(nowhere: Path, fake_engine: Any) -> None:
    docker_url = fake_engine(nowhere / "docker.sock")
    fake_engine(nowhere / "podman-root.sock")
    assert engine.engine_url() == docker_url


def test_silent_docker_socket_is_passed_over_for_podman(nowhere: Path, fake_engine: Any) -> None:
    fake_engine(nowhere / "docker.sock", broken=True)
    podman_url = fake_engine(nowhere / "podman-root.sock")
    assert engine.engine_url() == podman_url


def test_without_an_engine_the_managed_podman_socket_is_named(nowhere: Path) -> None:
    (nowhere / "docker.sock").write_text("a stale file, not a socket")
    assert engine.engine_url() == f"unix://{nowhere / 'cache' / 'podman' / 'podman.sock'}"


def test_answers_only_for_a_200_ping(nowhere: Path, fake_engine: Any) -> None:
    assert engine.answers(fake_engine(nowhere / "ok.sock"))
    assert not engine.answers(fake_engine(nowhere / "broken.sock", broken=True))
    assert not engine.answers(f"unix://{nowhere / 'missing.sock'}")
    assert not engine.answers("tcp://127.0.0.1:1")
    assert engine.answers("ssh://user@host")  # not probed: connect() decides


def test_connect_pings_the_engine(nowhere: Path, fake_engine: Any) -> None:
    client = engine.connect(fake_engine(nowhere / "ok.sock"), timeout=2)
    assert client.ping()
    client.close()


def test_connect_to_a_missing_socket_says_what_to_do(nowhere: Path) -> None:
    missing = nowhere / "missing.sock"
    with pytest.raises(PlatformError) as caught:
        engine.connect(f"unix://{missing}", timeout=2)
    assert f"{missing} does not exist" in caught.value.message
    assert "podman system service" in caught.value.hint
    assert "DOCKER_HOST" in caught.value.hint


def test_connect_to_an_engine_that_fails_is_a_platform_error(nowhere: Path,
                                                               fake_engine: Any) -> None:
    url = fake_engine(nowhere / "broken.sock", broken=True)
    with pytest.raises(PlatformError, match="no container engine answers at unix://"):
        engine.connect(url, timeout=2)


def test_a_dead_docker_host_is_reported_not_replaced(nowhere: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{nowhere / 'dead.sock'}")
    monkeypatch.setattr(engine, "_start_service", _must_not_start)
    with pytest.raises(PlatformError, match="dead.sock"):
        engine.ensure_podman_service()


def test_an_answering_engine_is_reused(nowhere: Path, fake_engine: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url = fake_engine(nowhere / "podman-root.sock")
    monkeypatch.setattr(engine, "_start_service", _must_not_start)
    assert engine.ensure_podman_service() == url


def test_no_engine_and_no_podman_says_how_to_install(nowhere: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain, "find_binary", lambda name: None)
    with pytest.raises(PlatformError, match="podman is not installed") as caught:
        engine.ensure_podman_service()
    assert "make setup" in caught.value.hint


def test_service_is_started_over_a_stale_socket_then_reused(
        nowhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake `podman` that serves /_ping where `podman system service` would listen."""
    fake = nowhere / "podman"
    fake.write_text(FAKE_PODMAN)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(toolchain, "find_binary", lambda name: str(fake))
    socket_path = nowhere / "cache" / "podman" / "podman.sock"
    socket_path.parent.mkdir(parents=True)
    socket_path.write_text("stale")
    try:
        url = engine.ensure_podman_service()
        assert url == f"unix://{socket_path}" and engine.answers(url)
        monkeypatch.setattr(engine, "_start_service", _must_not_start)
        assert engine.ensure_podman_service() == url
        conf_seen = (socket_path.parent / "conf-seen").read_text()
        assert conf_seen == str(socket_path.parent / "containers.conf")
    finally:
        pid = (socket_path.parent / "fake.pid").read_text()
        os.kill(int(pid), 15)


FAKE_PODMAN = """#!/usr/bin/env python3
import http.server, os, socketserver, sys
assert sys.argv[1:4] == ["system", "service", "--time=0"], sys.argv
path = sys.argv[4].removeprefix("unix://")
home = os.path.dirname(path)
open(os.path.join(home, "fake.pid"), "w").write(str(os.getpid()))
open(os.path.join(home, "conf-seen"), "w").write(os.environ["CONTAINERS_CONF"])
class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"OK")
    def log_message(self, *args):
        pass
socketserver.UnixStreamServer(path, Ping).serve_forever()
"""


def _must_not_start(*args: Any) -> None:
    raise AssertionError("a service was started although an engine answers")


def test_ulimits_are_clamped_to_the_hard_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = {resource.RLIMIT_NOFILE: (1024, 2048), resource.RLIMIT_NPROC: (100, 500)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: hard[which])
    limits = {u.name: (u.soft, u.hard) for u in engine.safe_ulimits(nofile=65536, nproc=4096)}
    assert limits == {"nofile": (2048, 2048), "nproc": (500, 500)}
    limits = {u.name: (u.soft, u.hard) for u in engine.safe_ulimits(nofile=1000, nproc=64)}
    assert limits == {"nofile": (1000, 1000), "nproc": (64, 64)}


def test_unlimited_hard_limits_give_what_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    monkeypatch.setattr(resource, "getrlimit", lambda which: unlimited)
    assert [(u.name, u.hard) for u in engine.safe_ulimits()] == [
        ("nofile", engine.NOFILE), ("nproc", engine.NPROC)]


def test_containers_conf_uses_runc_cgroupfs_and_our_ulimits(nowhere: Path) -> None:
    path = engine.containers_conf()
    text = path.read_text()
    for line in ('runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"',
                 f'network_config_dir = "{nowhere / "cache" / "podman" / "networks"}"'):
        assert line in text
    for ulimit in engine.safe_ulimits():
        assert f'"{ulimit.name}={ulimit.soft}:{ulimit.hard}"' in text
    written = path.stat().st_mtime_ns
    assert engine.containers_conf() == path and path.stat().st_mtime_ns == written


def test_stable_mac_follows_the_address() -> None:
    assert engine.stable_mac("198.19.77.40") == "02:42:c6:13:4d:28"
    assert engine.stable_mac("198.18.1.2") != engine.stable_mac("198.18.1.3")


def test_the_image_is_built_from_a_source_tree_only(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert image.build_script().name == "build.sh"
    installed = tmp_path / "site-packages" / "chaoskit" / "__init__.py"
    monkeypatch.setattr(chaoskit, "__file__", str(installed))
    with pytest.raises(PlatformError, match="source tree") as caught:
        image.build_script()
    assert "clone" in caught.value.hint


class _FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, ref: str) -> str:
        if ref not in self.present:
            raise ImageNotFound(ref)
        return ref


class _FakeClient:
    def __init__(self, present: set[str]) -> None:
        self.images = _FakeImages(present)

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": "Podman Engine"}]}


@pytest.fixture
def fake_build(nowhere: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build.sh that prints a reference and records each build in builds.log."""
    script = nowhere / "build.sh"
    script.write_text('#!/bin/sh\n[ "$1" = --print-ref ] || echo build >> "$(dirname "$0")/'
                      'builds.log"\necho "engine: $CHAOSKIT_ENGINE_CLI" >&2\n'
                      'echo localhost/chaoskit/payment-stack:0.1.0-abc\n')
    script.chmod(0o755)
    monkeypatch.setattr(image, "build_script", lambda: script)
    return nowhere / "builds.log"


def test_a_present_image_is_not_rebuilt(fake_build: Path) -> None:
    ref = "localhost/chaoskit/payment-stack:0.1.0-abc"
    assert image.ensure_stack_image(_FakeClient({ref})) == ref
    assert not fake_build.exists()


def test_a_missing_image_is_built_once(fake_build: Path) -> None:
    ref = image.ensure_stack_image(_FakeClient(set()))
    assert ref == "localhost/chaoskit/payment-stack:0.1.0-abc"
    assert fake_build.read_text() == "build\n"


def test_a_failed_build_is_a_platform_error(nowhere: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    script = nowhere / "build.sh"
    script.write_text("#!/bin/sh\necho 'build.sh: mmdebstrap is not installed' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setattr(image, "build_script", lambda: script)
    with pytest.raises(PlatformError, match="mmdebstrap is not installed"):
        image.ensure_stack_image(_FakeClient(set()))


def test_print_ref_of_the_real_build_script_is_stable_and_builds_nothing() -> None:
    script = image.build_script()
    refs = {subprocess.run([str(script), "--print-ref"], capture_output=True, text=True,
                           check=True, timeout=30).stdout.strip() for _ in range(2)}
    assert len(refs) == 1
    assert re.fullmatch(r"localhost/chaoskit/payment-stack:\S+-[0-9a-f]{12}", refs.pop())
