"""The systems `benchmarks.compare` can run, by name, imported only when run (each needs its own library).

A system whose library cannot share our environment names a private virtualenv and what to install in it:
arq >= 0.26 wants redis-py < 6, while Celery's kombu wants >= 6.4 and redispool uses redis-py 8.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from .base import Peer
from .plan import Plan


@dataclass(frozen=True)
class PeerSpec:
    module: str
    cls: str
    venv: str | None = None                  # a directory name under the bench cache, or None: our env
    requirements: tuple[str, ...] = ()       # what that venv needs (the runner itself needs only redis-py)


PEERS: dict[str, PeerSpec] = {
    "redispool": PeerSpec("benchmarks.peers.redispool_peer", "RedispoolPeer"),
    "redispool-queued": PeerSpec("benchmarks.peers.redispool_peer", "RedispoolQueuedPeer"),
    "redispool-batched": PeerSpec("benchmarks.peers.redispool_peer", "RedispoolBatchedPeer"),
    "celery": PeerSpec("benchmarks.peers.celery_peer", "CeleryPeer"),
    "rq-simple": PeerSpec("benchmarks.peers.rq_peer", "RqSimplePeer"),
    "rq-fork": PeerSpec("benchmarks.peers.rq_peer", "RqForkPeer"),
    "dramatiq": PeerSpec("benchmarks.peers.dramatiq_peer", "DramatiqPeer"),
    "huey": PeerSpec("benchmarks.peers.huey_peer", "HueyPeer"),
    "arq": PeerSpec("benchmarks.peers.arq_peer", "ArqPeer", venv="venv-arq", requirements=("arq>=0.26",)),
    "saq": PeerSpec("benchmarks.peers.saq_peer", "SaqPeer"),
}
ALIASES = {"rq": ("rq-simple", "rq-fork"), "all": tuple(PEERS)}


def resolve(names: str) -> list[str]:
    """'redispool,rq,huey' -> known system names in the given order (aliases expanded, no repeats)."""
    out: list[str] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        for system in ALIASES.get(name, (name,)):
            if system not in PEERS:
                raise ValueError(f"unknown system {system!r}; known: {', '.join([*PEERS, *ALIASES])}")
            if system not in out:
                out.append(system)
    return out


def load(name: str, url: str, plan: Plan) -> Peer:
    spec = PEERS[name]
    cls: type[Peer] = getattr(importlib.import_module(spec.module), spec.cls)
    return cls(url, plan)
