"""A Ray cluster as plain data, for `engine.batch.cluster` and whoever shows a cluster.

`ClusterError` (the cluster cannot run the batch), `cluster_address_text` (where a batch
runs, in words), `NodeInfo` and `ClusterCheck` (the machines, their CPUs, GPUs and
versions, as the batch dialog's Check button shows them) and `mismatch` (why a worker
may not join a batch). Nothing here imports Ray: only `engine.batch.cluster` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import EditedIDError


class ClusterError(EditedIDError):
    """The cluster cannot run the batch (cannot connect, no worker could start, ...)."""


def cluster_address_text(cluster: str) -> str:
    return "a private Ray on this computer" if cluster == "local" else f"Ray at {cluster}"


# --- checking a cluster (the batch dialog's Check button) -------------------------------
@dataclass
class NodeInfo:
    host: str
    address: str
    alive: bool
    cpus: float
    gpus: float
    versions: dict[str, str] = field(default_factory=dict)  # python, ray, engine, torch
    problem: str = ""


@dataclass
class ClusterCheck:
    address: str
    nodes: list[NodeInfo]
    here: dict[str, str]  # this computer's versions

    @property
    def gpus(self) -> int:
        return int(sum(n.gpus for n in self.nodes if n.alive))

    @property
    def cpus(self) -> int:
        return int(sum(n.cpus for n in self.nodes if n.alive))

    @property
    def workers(self) -> int:
        """Workers a batch would start by default: one per GPU, else one."""
        return max(1, self.gpus)

    def mismatches(self) -> list[str]:
        """One line per node whose Python, Ray or EditedID differs from this computer's."""
        lines = []
        for node in self.nodes:
            if node.problem:
                lines.append(f"{node.host}: {node.problem}")
                continue
            for key in ("python", "ray", "engine"):
                theirs, ours = node.versions.get(key), self.here.get(key)
                if theirs and ours and theirs != ours:
                    lines.append(f"{node.host}: {key} {theirs}, this computer has {ours}")
        return lines

    def summary(self) -> str:
        alive = [n for n in self.nodes if n.alive]
        text = (
            f"{len(alive)} machine{'s' if len(alive) != 1 else ''}, {self.gpus} GPU"
            f"{'s' if self.gpus != 1 else ''}, {self.cpus} CPUs: a batch starts "
            f"{self.workers} worker{'s' if self.workers != 1 else ''}."
        )
        problems = self.mismatches()
        return text + (" Mismatch: " + "; ".join(problems) if problems else "")


def mismatch(first: dict | None, info: dict) -> str:
    """Why a worker may not join a batch that `first` serves ("" when it may): another
    EditedID version, mode or model (its fingerprint) would make the batch uneven."""
    if first is None:
        return ""
    for key in ("engine", "mode", "fingerprint"):
        if info.get(key) != first.get(key):
            return f"its {key} {info.get(key)!r} differs from {first.get(key)!r}"
    return ""


def visible_gpus() -> int:
    """GPUs this machine shows (the default worker count of a private local Ray)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable torch: no GPU
        return 0
