"""`sqlagent ask`: submit a question, follow its SSE stream with a spinner, print SQL and rows.

Exit status: 0 when the attempt succeeded; 1 when it ended otherwise or the API refused the
request (the error code is printed); 2 when the server could not be reached or used."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from shared.attempts.status import is_terminal

PAGE_SIZE = 1000  # rows shown; the rest stay on the server (results.csv has them all)
RECONNECTS = 5

_STAGES = {
    "queued": "waiting for a worker",
    "generating": "writing SQL",
    "validating": "checking the SQL is read-only and safe",
    "executing": "running the query",
}


class AskError(Exception):
    def __init__(self, code: str, detail: str, exit_status: int = 1) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.exit_status = code, detail, exit_status


def _api_error(resp: httpx.Response) -> AskError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return AskError(
        str(body.get("error_code") or f"HTTP_{resp.status_code}"), str(body.get("detail") or resp.text)
    )


def _events(client: httpx.Client, attempt_id: str) -> Iterator[dict[str, Any]]:
    """Status events until the terminal one; reconnects with Last-Event-ID when the stream drops."""
    last, failures = 0, 0
    while True:
        headers = {"Last-Event-ID": str(last)} if last else {}
        try:
            with client.stream(
                "GET",
                f"/api/queries/{attempt_id}/events",
                headers=headers,
                timeout=httpx.Timeout(30, read=None),
            ) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise _api_error(resp)
                data: dict[str, Any] | None = None
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        data = json.loads(line[5:].strip())
                    elif line == "" and data is not None:
                        last, failures = int(data["seq"]), 0
                        yield data
                        if is_terminal(str(data["status"])):
                            return
                        data = None
        except httpx.TransportError as exc:
            failures += 1
            if failures > RECONNECTS:
                raise AskError("CONNECTION_LOST", f"the status stream kept failing: {exc}", 2) from exc
            time.sleep(min(0.2 * 2**failures, 5))


def _cell(value: object) -> str:
    if value is None:
        return "[dim]NULL[/dim]"
    if isinstance(value, list | dict):
        return escape(json.dumps(value, ensure_ascii=False))
    return escape(str(value))


def _table(page: dict[str, Any]) -> Table:
    table = Table(*[escape(c["name"]) for c in page["columns"]], show_lines=False)
    for row in page["rows"]:
        table.add_row(*[_cell(v) for v in row])
    return table


def _follow(client: httpx.Client, attempt_id: str, console: Console, err: Console) -> dict[str, Any]:
    final: dict[str, Any] = {}
    if err.is_terminal:
        with err.status("submitted", spinner="dots") as spinner:
            for event in _events(client, attempt_id):
                spinner.update(
                    f"{_STAGES.get(event['status'], event['status'])}  [dim]({event['status']})[/dim]"
                )
                final = event
    else:  # piped: one line per stage, so logs show the progress too
        for event in _events(client, attempt_id):
            err.print(f"{event['status']}", highlight=False)
            final = event
    return final


def _run(client: httpx.Client, question: str, data_source: str, console: Console, err: Console) -> int:
    try:
        resp = client.post("/api/queries", json={"question": question, "data_source": data_source})
    except httpx.TransportError as exc:
        raise AskError("CONNECTION_FAILED", f"cannot reach {client.base_url}: {exc}", 2) from exc
    if resp.status_code != 202:
        raise _api_error(resp)
    attempt_id = resp.json()["id"]
    _follow(client, attempt_id, console, err)

    resp = client.get(f"/api/queries/{attempt_id}")
    if resp.status_code != 200:
        raise _api_error(resp)
    attempt = resp.json()
    if attempt.get("sql"):
        console.print(
            Syntax(attempt["sql"], "sql", word_wrap=True, theme="ansi_dark", background_color="default")
        )
    if attempt.get("explanation"):
        console.print(f"[dim]{escape(attempt['explanation'])}[/dim]")
    if attempt["status"] != "succeeded":
        raise AskError(
            attempt.get("error_code") or attempt["status"].upper(), attempt.get("error_detail") or ""
        )

    resp = client.get(f"/api/queries/{attempt_id}/results", params={"page_size": PAGE_SIZE})
    if resp.status_code != 200:
        raise _api_error(resp)
    page = resp.json()
    console.print(_table(page))
    row_count = int(attempt["row_count"] or 0)
    notes = []
    if len(page["rows"]) < row_count:
        notes.append(
            f"showing the first {len(page['rows'])}; GET /api/queries/{attempt_id}/results.csv has all"
        )
    if attempt.get("truncated"):
        notes.append("truncated: the row or size cap was reached")
    total_ms = (attempt.get("timings") or {}).get("total_ms")
    took = f" in {total_ms} ms" if total_ms is not None else ""
    rows = (
        f"{row_count} row{'s' if row_count != 1 else ''}{' (truncated)' if attempt.get('truncated') else ''}"
    )
    console.print(f"{rows}{took}" + (f" — {'; '.join(notes)}" if notes else ""), highlight=False)
    return 0


def ask(question: str, *, server: str, token: str | None, data_source: str) -> int:
    console = Console()
    err = Console(stderr=True)
    if not token:
        err.print("sqlagent: no API token: pass --token or set SQLAGENT_TOKEN", highlight=False)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        try:
            return _run(client, question, data_source, console, err)
        except AskError as exc:
            err.print(f"[bold red]{escape(exc.code)}[/bold red]: {escape(exc.detail)}", highlight=False)
            return exc.exit_status
        except httpx.TransportError as exc:
            err.print(f"[bold red]CONNECTION_FAILED[/bold red]: {escape(str(exc))}", highlight=False)
            return 2
