"""The readings, domains and cap results of a node as dataclasses, made from the native JSON
documents (``powerstack.power.v1`` and the others, see ``docs/formats.md``). Each has
``as_dict()``; readings have ``rows()``, one dict per domain, which ``pandas.DataFrame`` takes as
they are."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Type, TypeVar

__all__ = [
    "DomainPower",
    "PowerReading",
    "DomainEnergy",
    "EnergyReading",
    "Control",
    "Domain",
    "CapWrite",
    "CapResult",
    "CapControl",
    "NodeCapRange",
    "Caps",
]

T = TypeVar("T")


def _make(cls: Type[T], doc: Dict[str, Any], **nested: Any) -> T:
    """``cls`` from the keys of ``doc`` it has fields for (a newer document's other keys are
    left out), with ``nested`` given instead of the document's own values."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in doc.items() if k in names}
    values.update(nested)
    return cls(**values)


def document(text: str) -> Dict[str, Any]:
    """A JSON document of the native module as a dict."""
    doc: Dict[str, Any] = json.loads(text)
    return doc


class _AsDict:
    def as_dict(self) -> Dict[str, Any]:
        """The dataclass as a dict (nested dataclasses as dicts too)."""
        d: Dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return d


class _DomainRows(_AsDict):
    """A reading of a node's domains (``hostname``, ``timestamp_us``, ``domains``)."""

    hostname: str
    timestamp_us: int
    domains: Sequence[_AsDict]

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per domain, with the hostname and the time: ``pandas.DataFrame(rows)``."""
        return [
            {"hostname": self.hostname, "timestamp_us": self.timestamp_us, **d.as_dict()}
            for d in self.domains
        ]


@dataclass(frozen=True)
class DomainPower(_AsDict):
    """One domain's power over the reading's interval."""

    domain: str
    """``platform``, ``package``, ``core``, ``uncore``, ``memory``, ``gpu``, ..."""
    index: int
    """The domain's number among those of its kind."""
    socket: Optional[int]
    """The CPU socket it belongs to, when it belongs to one."""
    power_watts: Optional[float]
    """Mean power over the interval, W; ``None`` when it could not be measured."""
    energy_joules: Optional[float]
    """The domain's extended energy counter at the end of the interval, J."""
    provider: str
    """The source that measured it (``powercap``, ``msr``, ``nvml``, ``hwmon``, ``pm_counters``)."""
    source: str
    """Where the source read it (``intel-rapl:0``, a GPU's PCI address)."""


@dataclass(frozen=True)
class PowerReading(_DomainRows):
    """The node's power over an interval (``powerstack.power.v1``)."""

    hostname: str
    timestamp_us: int
    """When the interval ended, µs since the Unix epoch."""
    interval_s: float
    """The interval measured, seconds."""
    simulated_profile: Optional[str]
    """The simulator profile of a simulated node; ``None`` on real hardware."""
    node_power_watts: Optional[float]
    """The whole node's power, W; ``None`` when no source measures or sums to it."""
    node_source: Optional[str]
    """Where the node figure comes from (a direct meter, or ``sum``)."""
    domains: List[DomainPower] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    """What could not be read."""

    @classmethod
    def from_document(cls, doc: Dict[str, Any]) -> "PowerReading":
        """The reading of a ``powerstack.power.v1`` document."""
        domains = [_make(DomainPower, d) for d in doc.get("domains", [])]
        return _make(cls, doc, domains=domains)


@dataclass(frozen=True)
class DomainEnergy(_AsDict):
    """One domain's energy counter."""

    domain: str
    index: int
    socket: Optional[int]
    energy_joules: Optional[float]
    """Extended since the node was opened (monotonic across wraps), J."""
    provider: str
    source: str


@dataclass(frozen=True)
class EnergyReading(_DomainRows):
    """The node's energy counters now (``powerstack.energy.v1``)."""

    hostname: str
    timestamp_us: int
    simulated_profile: Optional[str]
    node_energy_joules: Optional[float]
    node_source: Optional[str]
    domains: List[DomainEnergy] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def from_document(cls, doc: Dict[str, Any]) -> "EnergyReading":
        """The reading of a ``powerstack.energy.v1`` document."""
        domains = [_make(DomainEnergy, d) for d in doc.get("domains", [])]
        return _make(cls, doc, domains=domains)


@dataclass(frozen=True)
class Control(_AsDict):
    """A limit a domain carries (``long_term``, ``short_term``, ``cap``)."""

    name: str
    limit_watts: Optional[float]
    min_watts: Optional[float]
    max_watts: Optional[float]
    default_watts: Optional[float]
    time_window_s: Optional[float]
    enabled: Optional[bool]
    locked: bool


@dataclass(frozen=True)
class Domain(_AsDict):
    """A domain of the node (``powerstack.domains.v1``): what measures it and its limits."""

    domain: str
    index: int
    socket: Optional[int]
    provider: str
    source: str
    label: Optional[str] = None
    measurement: Optional[str] = None
    """``energy`` (a counter) or ``power`` (an instantaneous meter)."""
    controls: List[Control] = field(default_factory=list)

    @classmethod
    def from_document(cls, doc: Dict[str, Any]) -> "Domain":
        """One entry of a ``powerstack.domains.v1`` document's ``domains``."""
        controls = [_make(Control, c) for c in doc.get("controls", [])]
        return _make(cls, doc, controls=controls)


@dataclass(frozen=True)
class CapWrite(_AsDict):
    """One limit a cap writes (or, on a dry run, would write)."""

    domain: str
    index: int
    constraint: str
    previous_watts: Optional[float]
    requested_watts: Optional[float]
    read_back_watts: Optional[float]
    """The limit read back after the write; ``None`` on a dry run."""
    time_window_s: Optional[float]
    provider: str
    source: str


@dataclass(frozen=True)
class CapResult(_AsDict):
    """What a cap or a reset did (``powerstack.cap.v1``)."""

    command: str
    dry_run: bool
    policy: Optional[str] = None
    node_cap_watts: Optional[float] = None
    uncappable_watts: Optional[float] = None
    clamped: bool = False
    node_read_back_watts: Optional[float] = None
    writes: List[CapWrite] = field(default_factory=list)
    recovered: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def from_document(cls, doc: Dict[str, Any]) -> "CapResult":
        """The result of a ``powerstack.cap.v1`` document."""
        writes = [_make(CapWrite, w) for w in doc.get("writes", [])]
        return _make(cls, doc, writes=writes)


@dataclass(frozen=True)
class CapControl(_AsDict):
    """A limit in force, with who set it (an entry of ``powerstack.caps.v1``)."""

    domain: str
    index: int
    constraint: str
    limit_watts: Optional[float]
    min_watts: Optional[float]
    max_watts: Optional[float]
    default_watts: Optional[float]
    time_window_s: Optional[float]
    enabled: Optional[bool]
    locked: bool
    provider: str
    source: str
    set_by: str
    """``powerstack`` (journaled, with its original) or ``not powerstack``."""
    set_detail: Optional[str] = None
    set_at_unix_us: Optional[int] = None
    original_watts: Optional[float] = None
    """The limit before powerstack first changed it (what ``reset`` puts back)."""


@dataclass(frozen=True)
class NodeCapRange(_AsDict):
    """The node caps the node can take."""

    min_watts: float
    max_watts: float
    uncappable_watts: float
    cap_in_force_watts: Optional[float] = None
    standing_watts: Optional[float] = None


@dataclass(frozen=True)
class Caps(_AsDict):
    """Every limit of the node in force (``powerstack.caps.v1``)."""

    controls: List[CapControl] = field(default_factory=list)
    node: Optional[NodeCapRange] = None
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def from_document(cls, doc: Dict[str, Any]) -> "Caps":
        """The limits of a ``powerstack.caps.v1`` document."""
        controls = [_make(CapControl, c) for c in doc.get("controls", [])]
        node = _make(NodeCapRange, doc["node"]) if doc.get("node") else None
        return _make(cls, doc, controls=controls, node=node)
