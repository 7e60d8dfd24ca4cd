"""The node: power, energy, domains and caps, read and written by the same code as the
``powerstack`` command (the native module ``powerstack._powerstack``)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Union

from . import _powerstack
from .types import CapResult, Caps, Domain, EnergyReading, PowerReading, document

__all__ = ["Node"]

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


class Node:
    """The node this process runs on, or a simulated one.

    Where the hardware is found, as for the ``powerstack`` command: each argument when given,
    else the environment (``POWERSTACK_ROOT``, ``POWERSTACK_SOURCE``, ``POWERSTACK_SIMULATE``,
    ``POWERSTACK_NVML_LIB``), else the real node (root ``/``, every source, no simulation).
    ``simulate="intel-2s"`` (or any ``powerstack sim profiles`` name) starts a simulated node
    for as long as the ``Node`` is open; ``simulate="auto"`` does so only when nothing is
    readable.

    A ``Node`` is a context manager; :meth:`close` stops a simulated node. Calls that measure
    release the GIL; one call runs at a time on a node.

    Raises :class:`~powerstack.errors.InvalidArgument` for a bad argument and
    :class:`~powerstack.errors.Unavailable` when nothing can be read.
    """

    def __init__(
        self,
        root: Optional[PathLike] = None,
        source: Optional[str] = None,
        simulate: Optional[str] = None,
    ) -> None:
        self._native = _powerstack.NativeNode(_path(root), source, simulate)

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the node (a simulated node stops); later calls raise ``InvalidArgument``."""
        self._native.close()

    @property
    def hostname(self) -> str:
        """The node's hostname."""
        return self._native.hostname

    @property
    def simulated(self) -> Optional[str]:
        """The simulator profile of a simulated node; ``None`` on real hardware."""
        return self._native.simulated

    @property
    def simulated_note(self) -> Optional[str]:
        """The ``SIMULATED:`` line when the node is simulated: why, when opening started one, or
        which root, for a root made by ``powerstack sim create``; ``None`` for real hardware."""
        return self._native.simulated_note

    # Readings.

    def power_json(self, interval_s: float = 0.2) -> Dict[str, Any]:
        """The node's power over ``interval_s`` seconds: the ``powerstack.power.v1`` document."""
        return document(self._native.power_json(float(interval_s)))

    def power(self, interval_s: float = 0.2) -> PowerReading:
        """The node's power over ``interval_s`` seconds (ΔE/Δt of every domain: never a
        first-call 0 W)."""
        return PowerReading.from_document(self.power_json(interval_s))

    def energy_json(self) -> Dict[str, Any]:
        """The energy counters now: the ``powerstack.energy.v1`` document."""
        return document(self._native.energy_json())

    def energy(self) -> EnergyReading:
        """The energy counters now, extended across wraps (monotonic while the node is open)."""
        return EnergyReading.from_document(self.energy_json())

    def domains_json(self) -> Dict[str, Any]:
        """The domains, their sources and limits: the ``powerstack.domains.v1`` document."""
        return document(self._native.domains_json())

    def domains(self) -> List[Domain]:
        """The domains of the node, each with its limits."""
        return [Domain.from_document(d) for d in self.domains_json()["domains"]]

    # Caps. Each is validated against the domain's range and lock before anything is written,
    # journaled (its original kept for reset), written, read back, and rolled back on failure.

    def cap_socket(
        self,
        watts: float,
        socket: Optional[int] = None,
        time_window_s: Optional[float] = None,
        state_dir: Optional[PathLike] = None,
        dry_run: bool = False,
        clamp: bool = False,
    ) -> CapResult:
        """Sets the long-term limit of every CPU package (or of ``socket``) to ``watts``.

        ``state_dir`` is the journal's directory (default ``POWERSTACK_STATE_DIR``, else
        ``/var/lib/powerstack``; a simulated node keeps its own). ``dry_run`` validates and says
        what would be written; ``clamp`` applies the lowest allowed limit instead of refusing one
        below it. Raises :class:`~powerstack.errors.CapRefused` when validation refuses it.
        """
        return self._cap("socket", watts, socket, time_window_s, state_dir, dry_run, clamp)

    def cap_memory(
        self,
        watts: float,
        socket: Optional[int] = None,
        state_dir: Optional[PathLike] = None,
        dry_run: bool = False,
        clamp: bool = False,
    ) -> CapResult:
        """Sets the limit of every memory (DRAM) domain (or of ``socket``'s) to ``watts``."""
        return self._cap("memory", watts, socket, None, state_dir, dry_run, clamp)

    def cap_gpu(
        self,
        watts: float,
        gpu: Optional[int] = None,
        state_dir: Optional[PathLike] = None,
        dry_run: bool = False,
        clamp: bool = False,
    ) -> CapResult:
        """Sets the power cap of every GPU (or of ``gpu``) to ``watts``."""
        return self._cap("gpu", watts, gpu, None, state_dir, dry_run, clamp)

    def cap_node(
        self,
        watts: float,
        policy: str = "proportional",
        interval_s: float = 0.5,
        state_dir: Optional[PathLike] = None,
        dry_run: bool = False,
        clamp: bool = False,
    ) -> CapResult:
        """Caps the whole node at ``watts``: the node is measured over ``interval_s``, the power
        that cannot be capped is charged first, and the rest is split over the cappable domains
        (GPUs included) by ``policy`` (``proportional``, ``uniform`` or ``variorum``)."""
        doc = self._native.cap_node_json(
            float(watts), policy, float(interval_s), _path(state_dir), dry_run, clamp
        )
        return CapResult.from_document(document(doc))

    def reset(self, state_dir: Optional[PathLike] = None, dry_run: bool = False) -> CapResult:
        """Puts back every limit powerstack changed on this node (the journal's originals)."""
        doc = self._native.reset_json(_path(state_dir), dry_run)
        return CapResult.from_document(document(doc))

    def caps_json(self, state_dir: Optional[PathLike] = None) -> Dict[str, Any]:
        """Every limit in force and the node cap range: the ``powerstack.caps.v1`` document."""
        return document(self._native.caps_json(_path(state_dir)))

    def caps(self, state_dir: Optional[PathLike] = None) -> Caps:
        """Every limit in force, with who set it and its original, and the node cap range."""
        return Caps.from_document(self.caps_json(state_dir))

    def _cap(
        self,
        kind: str,
        watts: float,
        index: Optional[int],
        time_window_s: Optional[float],
        state_dir: Optional[PathLike],
        dry_run: bool,
        clamp: bool,
    ) -> CapResult:
        doc = self._native.cap_json(
            kind, float(watts), index, time_window_s, _path(state_dir), dry_run, clamp
        )
        return CapResult.from_document(document(doc))

    def __repr__(self) -> str:
        sim = f", simulated={self.simulated!r}" if self.simulated else ""
        return f"Node(hostname={self.hostname!r}{sim})"
