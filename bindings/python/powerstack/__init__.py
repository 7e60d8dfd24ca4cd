"""powerstack for Python: node power, energy, domains and caps, and job power from the node
agents and the site service.

Everything is measured, validated and written by powerstack's own Rust code, the code of the
``powerstack`` command, through the native module ``powerstack._powerstack``.

>>> import powerstack
>>> with powerstack.Node(simulate="intel-2s") as node:
...     reading = node.power(interval_s=0.2)
...     print(f"{reading.node_power_watts:.0f} W")

Where the hardware is found: the real node by default; ``POWERSTACK_ROOT`` and
``POWERSTACK_SIMULATE`` work as for the command. See ``docs/bindings.md``.
"""

from __future__ import annotations

from . import _powerstack
from .errors import (
    CapRefused,
    HardwareError,
    InvalidArgument,
    PowerstackError,
    RemoteError,
    Unavailable,
)
from .jobs import Site, job_query, job_query_document
from .node import Node
from .types import (
    CapControl,
    CapResult,
    Caps,
    CapWrite,
    Control,
    Domain,
    DomainEnergy,
    DomainPower,
    EnergyReading,
    NodeCapRange,
    PowerReading,
)

__version__: str = _powerstack.__version__

__all__ = [
    "Node",
    "Site",
    "job_query",
    "job_query_document",
    "PowerReading",
    "DomainPower",
    "EnergyReading",
    "DomainEnergy",
    "Domain",
    "Control",
    "CapResult",
    "CapWrite",
    "Caps",
    "CapControl",
    "NodeCapRange",
    "PowerstackError",
    "InvalidArgument",
    "CapRefused",
    "Unavailable",
    "HardwareError",
    "RemoteError",
]
