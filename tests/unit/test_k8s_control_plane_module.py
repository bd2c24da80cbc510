"""The control-plane Go module pins one Kubernetes release, consistently with the Python client."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes

from tests.fixtures.control_plane import COMMANDS, MODULE, kubernetes_version

CORE_STAGING = {"api", "apimachinery", "apiserver", "client-go", "component-base",
                "controller-manager", "kube-scheduler", "kubelet", "kms", "cloud-provider"}


def replaces(go_mod: Path) -> dict[str, tuple[str, str]]:
    block = re.search(r"^replace \((.*?)^\)", go_mod.read_text(), re.MULTILINE | re.DOTALL)
    assert block, f"{go_mod} has no replace block"
    pairs = re.findall(r"^\s*(\S+) => (\S+) (\S+)$", block.group(1), re.MULTILINE)
    return {old: (new, version) for old, new, version in pairs}


def test_the_kubernetes_minor_matches_the_python_clients_major() -> None:
    version = kubernetes_version()
    assert re.fullmatch(r"v1\.\d+\.\d+", version)
    assert version.split(".")[1] == kubernetes.__version__.split(".")[0]


def test_every_staging_module_is_replaced_by_its_published_release() -> None:
    staging_version = "v0." + kubernetes_version().removeprefix("v1.")
    pinned = replaces(MODULE / "go.mod")
    assert {f"k8s.io/{m}" for m in CORE_STAGING} <= set(pinned)
    for old, (new, version) in pinned.items():
        assert old.startswith("k8s.io/") and new == old, old
        assert version == staging_version, old


def test_the_tools_file_pins_the_commands_build_sh_builds() -> None:
    tools = (MODULE / "tools.go").read_text()
    build = (MODULE / "build.sh").read_text()
    for command in COMMANDS:
        if command.startswith("kube-"):
            assert f'"k8s.io/kubernetes/cmd/{command}"' in tools
            assert command in build
    assert "go.etcd.io/etcd/server/v3" in (MODULE / "etcd" / "tools.go").read_text()
    assert "sigs.k8s.io/kwok/cmd/kwok@" in build
