"""A toy platform from outside chaoskit, registered only through the `chaoskit.platforms`
entry point (tests write its dist-info): proof that adding a platform is one class and one
line. Its nodes are lines of a JSON file; losing one marks it, restoring unmarks it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from chaoskit.platforms.abilities import NodeInfo, PlatformConfig


class ToyConfig(PlatformConfig):
    state: str = Field(description="the toy's state file")


class ToyPlatform:
    """Platform + NodeOperations (kill and freeze only) + Entry; nothing else."""

    name = "toy"
    Config = ToyConfig

    def __init__(self, state: str) -> None:
        self.state = Path(state)
        if not self.state.exists():
            self._save({"nodes": ["toy-1", "toy-2"], "lost": {}, "calls": []})

    @classmethod
    def from_target(cls, target: Any) -> ToyPlatform:
        return cls(ToyConfig.model_validate(target.options()).state)

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> ToyPlatform:
        return cls(description["state"])

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state.read_text())
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.state.write_text(json.dumps(data))

    def describe(self) -> dict[str, Any]:
        return {"platform": "toy", "state": str(self.state)}

    def identity(self) -> str:
        return f"toy:{self.state}"

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(n, "127.0.0.1") for n in self._load()["nodes"]]

    async def preflight(self) -> list[str]:
        return []

    def entry_url(self) -> str:
        return "http://127.0.0.1:9"

    def node_loss_modes(self) -> dict[str, str | None]:
        return {"kill": None, "freeze": None}

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        data = self._load()
        data["lost"][node] = mode
        data["calls"].append(["lose", node, mode])
        self._save(data)
        return {"toy": "lost"}

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        data = self._load()
        data["lost"].pop(node, None)
        data["calls"].append(["restore", node, mode])
        self._save(data)
        return {}

    def node_residue(self, node: str) -> list[str]:
        lost = self._load()["lost"]
        return [f"toy node {node} is still lost"] if node in lost else []
