"""The exceptions powerstack raises: each a :class:`PowerstackError` with the library's one-line
message, which says what went wrong and what to do."""

from __future__ import annotations

__all__ = [
    "PowerstackError",
    "InvalidArgument",
    "CapRefused",
    "Unavailable",
    "HardwareError",
    "RemoteError",
]


class PowerstackError(Exception):
    """Any failure of powerstack."""


class InvalidArgument(PowerstackError, ValueError):
    """An argument that cannot be used: an unknown name, a number out of range, a bad job id."""


class CapRefused(InvalidArgument):
    """A cap refused by validation (out of the domain's range, locked, below what the node can
    reach) before anything was written: the limits are as they were."""


class Unavailable(PowerstackError):
    """The node has no such source, domain or limit (no readable power source, no GPU)."""


class HardwareError(PowerstackError, OSError):
    """The hardware or the state directory could not be read or written, or a write did not
    read back (and was rolled back)."""


class RemoteError(PowerstackError):
    """The site service could not be reached, or answered an error."""
