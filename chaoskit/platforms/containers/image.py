"""The payment stack's image, built offline by k8s/image/build.sh only when its sources changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker
from docker.errors import ImageNotFound

import chaoskit
from chaoskit.errors import PlatformError
from chaoskit.platforms.containers.engine import containers_conf

BUILD_TIMEOUT = 1800.0  # a cold build (mmdebstrap + wheels + image) takes ~2 min here


def build_script() -> Path:
    """k8s/image/build.sh of the source tree chaoskit runs from. The image's tag hashes that
    tree, so an installed (non-editable) chaoskit, which has none, cannot build it."""
    root = Path(chaoskit.__file__).resolve().parent.parent
    script = root / "k8s" / "image" / "build.sh"
    if not (script.is_file() and (root / "pyproject.toml").is_file()):
        raise PlatformError("the payment stack's image is built from a chaoskit source tree, "
                            f"and chaoskit runs from an installed package ({root})",
                            hint="run from a clone (`pip install -e .`), or build the image "
                                 "there with `k8s/image/build.sh` and load it into this engine")
    return script


def ensure_stack_image(client: docker.DockerClient) -> str:
    """The reference of the stack's image for the current sources, built if the engine lacks it."""
    script = build_script()
    env = _build_env(client)
    ref = _run(script, env, "--print-ref")
    try:
        client.images.get(ref)
    except ImageNotFound:
        return _run(script, env)
    return ref


def stack_image_ref() -> str:
    """The reference the current sources' stack image has (built or not): builds nothing and
    asks no engine."""
    return _run(build_script(), dict(os.environ), "--print-ref")


def has_image(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def _build_env(client: docker.DockerClient) -> dict[str, str]:
    """build.sh drives the engine's command-line tool: podman (with chaoskit's config, so it
    shares the service's storage and settings) or docker."""
    components = client.version().get("Components") or []
    is_podman = any("podman" in str(part.get("Name", "")).lower() for part in components)
    env = {**os.environ, "CHAOSKIT_ENGINE_CLI": "podman" if is_podman else "docker"}
    if is_podman:
        env["CONTAINERS_CONF"] = str(containers_conf())
    pip = Path(sys.executable).with_name("pip")
    if pip.is_file():  # the wheels come from the interpreter chaoskit runs in
        env.setdefault("CHAOSKIT_PIP", str(pip))
    return env


def _run(script: Path, env: dict[str, str], *args: str) -> str:
    """Runs build.sh; its last stdout line is the image reference."""
    try:
        done = subprocess.run([str(script), *args], env=env, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlatformError(f"could not run {script}: {exc}",
                            hint=f"run `{script}` by hand to see why") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        detail = " | ".join(done.stderr.strip().splitlines()[-5:]) or f"exit {done.returncode}"
        raise PlatformError(f"building the payment stack's image failed: {detail}",
                            hint=f"run `{script}` by hand; its log is "
                                 "~/.cache/chaoskit/images/build.log")
    return lines[-1]
