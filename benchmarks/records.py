"""Result rows and targets: the one shape every workload reports in, whatever it measures.

A row compares ours with one peer (or with nothing, for absolute targets such as W5's seconds) and
carries at most one target, stated as in the spec ("<= 0.25x ONNX Runtime") and evaluated on the
number it is about, so the table shows target and measurement side by side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: What a target bounds: ours/peer time, ours/peer GFLOP/s, or ours' own value in seconds/ratio.
TargetMetric = Literal["time_ratio", "gflops_ratio", "value"]


@dataclass(frozen=True)
class Target:
    """``measured <op> bound``, e.g. time ratio <= 0.25; ``text`` is how the spec phrases it."""

    metric: TargetMetric
    op: Literal["<=", ">="]
    bound: float
    text: str

    def met(self, measured: float | None) -> bool | None:
        if measured is None:
            return None
        return measured <= self.bound if self.op == "<=" else measured >= self.bound


@dataclass
class Row:
    """One line of the results table. Times are seconds per call; ``None`` means not measured."""

    workload: str
    case: str
    peer: str | None = None
    ours: float | None = None
    ours_iqr: float | None = None
    peer_value: float | None = None
    peer_iqr: float | None = None
    unit: str = "s"
    flops: int | None = None
    target: Target | None = None
    status: str = "ok"  # "ok", "skipped: <why>", "MISMATCH: <what>", "error: <what>"
    checked: bool = False
    plot: bool = True  # False for rows whose "peer" is not another library (W6 scaling)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """ours / peer time (lower is better for us)."""
        if self.ours is None or self.peer_value is None or self.peer_value == 0:
            return None
        return self.ours / self.peer_value

    @property
    def gflops_ours(self) -> float | None:
        return None if self.flops is None or not self.ours else self.flops / self.ours * 1e-9

    @property
    def gflops_peer(self) -> float | None:
        if self.flops is None or not self.peer_value:
            return None
        return self.flops / self.peer_value * 1e-9

    @property
    def measured(self) -> float | None:
        """The number the target is about."""
        if self.target is None:
            return None
        if self.target.metric == "time_ratio":
            return self.ratio
        if self.target.metric == "gflops_ratio":
            ours, peer = self.gflops_ours, self.gflops_peer
            return None if ours is None or not peer else ours / peer
        return self.ours

    @property
    def met(self) -> bool | None:
        return None if self.target is None or self.status != "ok" else self.target.met(
            self.measured)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, gflops_ours=self.gflops_ours,
                    gflops_peer=self.gflops_peer, measured=self.measured, met=self.met)
        return data
