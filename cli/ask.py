"""`sqlagent ask`: submit a question, follow its SSE stream with a spinner, print SQL and rows."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from shared.attempts.status import is_terminal

_STAGES = {
    "queued": "waiting for a worker",
    "generating": "writing SQL",
    "validating": "checking the SQL is read-only and safe",
    "executing": "running the query",
}


def _events(client: httpx.Client, attempt_id: str) -> Any:
    """Yield status events; reconnect with Last-Event-ID if the stream drops."""
    last = 0
    while True:
        headers = {"Last-Event-ID": str(last)} if last else {}
        with client.stream("GET", f"/api/queries/{attempt_id}/events", headers=headers, timeout=None) as resp:
            resp.raise_for_status()
            data = None
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:].strip())
                elif line == "" and data is not None:
                    last = data["seq"]
                    yield data
                    if is_terminal(data["status"]):
                        return
                    data = None


def ask(question: str, *, server: str, token: str | None, data_source: str) -> int:
    console = Console()
    err = Console(stderr=True)
    if not token:
        err.print("sqlagent: no API token: pass --token or set SQLAGENT_TOKEN")
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        try:
            resp = client.post("/api/queries", json={"question": question, "data_source": data_source})
        except httpx.HTTPError as exc:
            err.print(f"sqlagent: cannot reach {server}: {exc}")
            return 2
        if resp.status_code != 202:
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            err.print(f"[red]{body.get('error_code', resp.status_code)}[/red]: {body.get('detail', resp.text)}")
            return 1
        attempt_id = resp.json()["id"]
        final: dict[str, Any] = {}
        with console.status("submitted") as status:
            for event in _events(client, attempt_id):
                status.update(_STAGES.get(event["status"], event["status"]))
                final = event
        attempt = client.get(f"/api/queries/{attempt_id}").json()
        if attempt.get("sql"):
            console.print(Syntax(attempt["sql"], "sql", word_wrap=True))
        if final.get("status") != "succeeded":
            err.print(f"[red]{attempt.get('error_code')}[/red]: {attempt.get('error_detail')}")
            return 1
        page = client.get(f"/api/queries/{attempt_id}/results", params={"page_size": 1000}).json()
        table = Table(*[c["name"] for c in page["columns"]])
        for row in page["rows"]:
            table.add_row(*["" if v is None else str(v) for v in row])
        console.print(table)
        more = " (truncated)" if attempt.get("truncated") else ""
        console.print(f"{attempt['row_count']} row(s){more} in {attempt['timings']['total_ms']} ms")
        return 0
