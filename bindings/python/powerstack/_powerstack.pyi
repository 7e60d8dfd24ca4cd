"""Type hints of the native module (crates/powerstack-py). Use the package's API instead."""

from typing import List, Optional, Tuple

__version__: str

class NativeNode:
    def __init__(
        self, root: Optional[str] = None, source: Optional[str] = None, simulate: Optional[str] = None
    ) -> None: ...
    @property
    def hostname(self) -> str: ...
    @property
    def simulated(self) -> Optional[str]: ...
    @property
    def simulated_note(self) -> Optional[str]: ...
    def power_json(self, interval_s: float) -> str: ...
    def energy_json(self) -> str: ...
    def domains_json(self) -> str: ...
    def cap_json(
        self,
        kind: str,
        watts: float,
        index: Optional[int] = None,
        time_window_s: Optional[float] = None,
        state_dir: Optional[str] = None,
        dry_run: bool = False,
        clamp: bool = False,
    ) -> str: ...
    def cap_node_json(
        self,
        watts: float,
        policy: str = "proportional",
        interval_s: float = 0.5,
        state_dir: Optional[str] = None,
        dry_run: bool = False,
        clamp: bool = False,
    ) -> str: ...
    def reset_json(self, state_dir: Optional[str] = None, dry_run: bool = False) -> str: ...
    def caps_json(self, state_dir: Optional[str] = None) -> str: ...
    def close(self) -> None: ...

def job_query(
    job_id: str,
    agents: List[str] = ...,
    nodes: Optional[str] = None,
    port: int = 9464,
    timeout_s: float = 2.0,
    token: Optional[str] = None,
    peak_window_s: Optional[float] = None,
) -> Tuple[str, str]: ...
def site_jobs(
    url: str,
    token: Optional[str] = None,
    ca_file: Optional[str] = None,
    timeout_s: float = 10.0,
    user: Optional[str] = None,
    since: Optional[str] = None,
    until: Optional[str] = None,
    limit: Optional[int] = None,
) -> Tuple[str, str]: ...
def site_job_report(
    url: str,
    job_id: str,
    token: Optional[str] = None,
    ca_file: Optional[str] = None,
    timeout_s: float = 10.0,
) -> Tuple[str, str]: ...
