"""Jobs: a job's power and energy asked of its nodes' agents at once, and the jobs recorded at
the site service. Rows are dicts with the columns of the CLI's CSV (``powerstack job query
--format csv``, ``powerstack jobs --format csv``, ``powerstack job report --format csv``), so
``pandas.DataFrame(rows)`` takes them as they are. As in the CSV, a figure that cannot be given
is ``-1`` (see ``docs/formats.md``); an empty cell is ``None``."""

from __future__ import annotations

import csv
import datetime
import io
import os
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _powerstack
from .types import document

__all__ = ["job_query", "job_query_document", "Site"]

Row = Dict[str, Any]

#: Columns that hold text; every other column holds a number (``settled`` a bool).
TEXT_COLUMNS = frozenset(
    {
        "hostname",
        "data_presence",
        "status",
        "job_id",
        "user",
        "account",
        "app",
        "nodes",
        "begin_utc",
        "end_utc",
    }
)


def _cell(column: str, text: str) -> Any:
    if column in TEXT_COLUMNS:
        return text
    if text == "":
        return None
    if column == "settled":
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


def rows_of_csv(text: str) -> List[Row]:
    """The rows of the CLI's CSV as dicts, numbers as ``int`` or ``float``."""
    return [
        {k: _cell(k, v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))
    ]


def _query(
    job_id: str,
    agents: Sequence[str],
    nodes: Optional[str],
    port: int,
    timeout_s: float,
    token: Optional[str],
    peak_window_s: Optional[float],
) -> "tuple[str, str]":
    if isinstance(agents, str):
        agents = [agents]
    return _powerstack.job_query(
        job_id, list(agents), nodes, port, float(timeout_s), token, peak_window_s
    )


def job_query(
    job_id: str,
    agents: Sequence[str] = (),
    nodes: Optional[str] = None,
    port: int = 9464,
    timeout_s: float = 2.0,
    token: Optional[str] = None,
    peak_window_s: Optional[float] = None,
) -> List[Row]:
    """Asks every agent at once for job ``job_id``'s power and energy on its node.

    ``agents`` are addresses (``host:port``, or the path of an agent's Unix socket);
    ``nodes`` a hostlist (``node[01-04,07]``) whose agents listen on ``port``. Returns one row
    per node asked, in that order, then the ``TOTAL`` row: the columns of ``powerstack job query
    --format csv`` (``hostname``, ``node_power``, ``data_presence``, ``cpu_power_0``, ...,
    ``energy_joules``, ``status``). A node that does not answer is a row that says so in
    ``status``, never an exception. Raises ``InvalidArgument`` for a bad job id or address.
    """
    _, text = _query(job_id, agents, nodes, port, timeout_s, token, peak_window_s)
    return rows_of_csv(text)


def job_query_document(
    job_id: str,
    agents: Sequence[str] = (),
    nodes: Optional[str] = None,
    port: int = 9464,
    timeout_s: float = 2.0,
    token: Optional[str] = None,
    peak_window_s: Optional[float] = None,
) -> Dict[str, Any]:
    """:func:`job_query`'s answers as ``powerstack job query --format json`` prints them:
    ``job_id``, ``nodes`` (each node's result with its per-domain figures) and ``total``."""
    doc, _ = _query(job_id, agents, nodes, port, timeout_s, token, peak_window_s)
    return document(doc)


def _when(t: Union[None, str, int, float, datetime.datetime]) -> Optional[str]:
    """A time as ``powerstack jobs`` takes it: text as given (``7d``, ``2026-11-21``), a
    ``datetime`` (naive: UTC) or seconds since the Unix epoch as ``@SECONDS``."""
    if t is None or isinstance(t, str):
        return t
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.timezone.utc)
        t = t.timestamp()
    return f"@{int(t)}"


class Site:
    """The site service at ``url`` (``http://host:port`` or ``https://...``).

    ``token`` is the bearer token (or ``token_file``, a file holding it), ``ca_file`` a CA
    bundle for ``https`` (default: the system's), ``timeout_s`` the limit of each call. Raises
    :class:`~powerstack.errors.RemoteError` when the site cannot be reached or answers an error.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        token_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        ca_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        timeout_s: float = 10.0,
    ) -> None:
        if token is None and token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        self.url = url
        self._token = token
        self._ca_file = None if ca_file is None else os.fspath(ca_file)
        self._timeout_s = float(timeout_s)

    def _jobs(
        self, user: Optional[str], since: Any, until: Any, limit: Optional[int]
    ) -> "tuple[str, str]":
        return _powerstack.site_jobs(
            self.url,
            self._token,
            self._ca_file,
            self._timeout_s,
            user,
            _when(since),
            _when(until),
            limit,
        )

    def jobs(
        self,
        since: Union[None, str, int, float, datetime.datetime] = None,
        until: Union[None, str, int, float, datetime.datetime] = None,
        user: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Row]:
        """The jobs recorded at the site, one row per job with the columns of ``powerstack jobs
        --format csv`` (``job_id``, ``user``, ``nodes``, ``begin_unix_us``, ``energy_joules``,
        ``mean_power_watts``, ...). ``since``/``until``: ``"7d"``, ``"2026-11-21"``, a
        ``datetime`` or Unix seconds."""
        _, text = self._jobs(user, since, until, limit)
        return rows_of_csv(text)

    def jobs_document(
        self,
        since: Union[None, str, int, float, datetime.datetime] = None,
        until: Union[None, str, int, float, datetime.datetime] = None,
        user: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> Dict[str, Any]:
        """:meth:`jobs` as the site's ``powerstack.site-jobs.v1`` document."""
        doc, _ = self._jobs(user, since, until, limit)
        return document(doc)

    def job_report(self, job_id: str) -> List[Row]:
        """Job ``job_id``'s figures, one row per node then ``TOTAL``: the columns of ``powerstack
        job report --format csv`` (those of :func:`job_query` and ``covered_percent``)."""
        _, text = _powerstack.site_job_report(
            self.url, job_id, self._token, self._ca_file, self._timeout_s
        )
        return rows_of_csv(text)

    def job_report_document(self, job_id: str) -> Dict[str, Any]:
        """Job ``job_id``'s record and report: the site's ``powerstack.site-job.v1`` document."""
        doc, _ = _powerstack.site_job_report(
            self.url, job_id, self._token, self._ca_file, self._timeout_s
        )
        return document(doc)

    def __repr__(self) -> str:
        return f"Site({self.url!r})"
