"""A scripted OpenAI-compatible chat-completions server for tests (stdlib only).

A real HTTP server on 127.0.0.1 (openai 3.x speaks httpx2, so doubles must be real servers). Use it
in-process::

    with LlmServer({"questions": {"How many users?": '{"sql": "SELECT count(*) FROM users"}'}}) as srv:
        config = LlmConfig(base_url=srv.base_url, ...)     # base_url ends in /v1
        ...
        assert srv.calls("How many users?")[0]["authorization"] == "Bearer sk-test"

or as a separate process (for API/worker processes started once per session)::

    python tests/support/llm_server.py --port 0 --script script.json [--gold-csv q.csv] [--api-key K]

which prints its base URL (`http://127.0.0.1:PORT/v1`) as the first stdout line and serves until
SIGTERM/SIGINT. `LlmServerProcess` wraps that and offers the same `add`/`update`/`requests`/`calls`
methods as `LlmServer`, over HTTP.

Script (JSON; every key optional)::

    {
      "questions": {"<question>": RESPONSE or [RESPONSE, ...]},   # one response per round
      "gold": {"<question>": "<SQL>"},         # answered {"sql": SQL, "explanation": "gold SQL"}
      "default": RESPONSE                      # unknown questions; default {"sql": null, ...}
    }

A request's **question** is its first `user` message (the agent sends the bare question there; a
repair message repeats it later). It selects an entry by exact match (whitespace-trimmed), else the
longest script key contained in the question, else the default. The **round** is the number of
`assistant` messages in the request; round r uses the entry's r-th response (the last one once the
list runs out). A RESPONSE is one of:

- `"text"` or `{"content": "text", "usage"?: {"prompt_tokens", "completion_tokens"}, "finish_reason"?}`
- `{"sql": "SELECT …" | null, "explanation"?: "…"}`: sent as that JSON object in the content
- `{"status": 503, "retry_after"?: 0.2, "message"?: "…"}`: an OpenAI-style error body;
  `retry_after` (seconds) adds `Retry-After` and `retry-after-ms` headers
- `{"delay_s": 5, "then"?: RESPONSE}`: wait, then answer `then` (default: the script's default)
- `{"fail_times": 2, "status"?: 500, "retry_after"?, "message"?, "then": RESPONSE}`: the first N calls for
  this question and round fail with `status`, later ones answer `then`
- `{"disconnect": true}`: close the connection without answering (a connection error)
- `{"raw_body": "<html>…", "status"?: 200, "content_type"?: "text/html"}`: a non-OpenAI answer

Control endpoints (also used by `LlmServerProcess`): `POST /_script` merges a script (`"reset":
true` in it starts from empty), `GET /_requests[?question=Q]` lists recorded requests, `POST /_reset`
forgets requests and `fail_times` counters, `GET /_health`. `GET /v1/models` lists one model.
Every chat request is recorded as a dict: `path, model, messages, question, round, matched (the
script key or null), authorization (the raw header), temperature, body`.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_RESPONSE: dict[str, Any] = {
    "sql": None,
    "explanation": "The test server has no script for this question.",
}
GOLD_EXPLANATION = "gold SQL"


class Script:
    """The scripted answers and per-(question, round) call counters; thread-safe."""

    def __init__(self, script: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[Any]] = {}
        self._default: Any = DEFAULT_RESPONSE
        self._counters: dict[tuple[str | None, int], int] = {}
        if script:
            self.update(script)

    def update(self, script: dict[str, Any]) -> None:
        unknown = set(script) - {"questions", "gold", "default", "reset"}
        if unknown:
            raise ValueError(f"unknown script keys: {sorted(unknown)}")
        with self._lock:
            if script.get("reset"):
                self._entries.clear()
                self._counters.clear()
                self._default = DEFAULT_RESPONSE
            for question, responses in (script.get("questions") or {}).items():
                self._set(question, responses if isinstance(responses, list) else [responses])
            for question, sql in (script.get("gold") or {}).items():
                self._set(question, [{"sql": sql, "explanation": GOLD_EXPLANATION}])
            if "default" in script:
                self._default = script["default"]

    def _set(self, question: str, responses: list[Any]) -> None:
        if not responses:
            raise ValueError(f"no responses for {question!r}")
        key = question.strip()
        self._entries[key] = list(responses)
        for counter in [c for c in self._counters if c[0] == key]:
            del self._counters[counter]

    def reset_counters(self) -> None:
        with self._lock:
            self._counters.clear()

    def lookup(self, question: str, round_: int) -> tuple[str | None, Any, int]:
        """(matched key, response, how many earlier calls hit this question and round)."""
        question = question.strip()
        with self._lock:
            key: str | None = question if question in self._entries else None
            if key is None:
                contained = [k for k in self._entries if k and k in question]
                key = max(contained, key=len) if contained else None
            if key is None:
                response = self._default
            else:
                responses = self._entries[key]
                response = responses[min(round_, len(responses) - 1)]
            seen = self._counters.get((key, round_), 0)
            self._counters[(key, round_)] = seen + 1
            return key, copy.deepcopy(response), seen

    @property
    def default(self) -> Any:
        with self._lock:
            return copy.deepcopy(self._default)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], script: Script, api_key: str | None) -> None:
        super().__init__(address, _Handler)
        self.script = script
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.requests_lock = threading.Lock()
        self.stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    # Head and body go out in two writes: without TCP_NODELAY the body waits ~40 ms for the
    # client's delayed ACK on a keep-alive connection (measured by bench/).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}
        code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
        error = {"message": message, "type": kinds.get(status, "server_error"), "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)

    # -- routes ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_health":
            self._send_json(200, {"ok": True})
        elif url.path == "/_requests":
            question = urllib.parse.parse_qs(url.query).get("question", [None])[0]
            with self.server.requests_lock:
                found = [r for r in self.server.requests if question is None or r["question"] == question]
            self._send_json(200, found)
        elif url.path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
        else:
            self._send_error(404, f"no route {url.path}")

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = self._body()
        except ValueError:
            self._send_error(400, "the body is not JSON")
            return
        if path == "/_script":
            try:
                self.server.script.update(body)
            except (ValueError, AttributeError, TypeError) as exc:
                self._send_error(400, str(exc))
                return
            self._send_json(200, {"ok": True})
        elif path == "/_reset":
            with self.server.requests_lock:
                self.server.requests.clear()
            self.server.script.reset_counters()
            self._send_json(200, {"ok": True})
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(path, body)
        else:
            self._send_error(404, f"no route {path}")

    def _chat(self, path: str, body: Any) -> None:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            self._send_error(400, "'messages' is required")
            return
        users = [m.get("content") or "" for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        question = users[0] if users else ""
        round_ = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        authorization = self.headers.get("Authorization")
        authorized = self.server.api_key is None or authorization == f"Bearer {self.server.api_key}"
        # a refused call consumes no scripted response (nor a fail_times count)
        matched, response, seen = (
            self.server.script.lookup(question, round_) if authorized else (None, None, 0)
        )
        with self.server.requests_lock:
            self.server.requests.append(
                {
                    "path": path,
                    "model": body.get("model"),
                    "messages": messages,
                    "question": question,
                    "round": round_,
                    "matched": matched,
                    "authorization": authorization,
                    "temperature": body.get("temperature"),
                    "body": body,
                }
            )
        if not authorized:
            self._send_error(401, "Incorrect API key provided.")
            return
        if body.get("stream"):
            self._send_error(400, "the test server does not stream")
            return
        self._respond(response, body, messages, seen)

    def _respond(self, response: Any, body: dict[str, Any], messages: list[Any], seen: int) -> None:
        if isinstance(response, dict) and "fail_times" in response:
            if seen < int(response["fail_times"]):
                failure = {key: response.get(key) for key in ("retry_after", "message")}
                failure["status"] = response.get("status", 500)
                self._respond(failure, body, messages, seen)
            else:
                self._respond(response.get("then", self.server.script.default), body, messages, seen)
            return
        if isinstance(response, dict) and "delay_s" in response:
            if self.server.stopping.wait(float(response["delay_s"])):
                self.close_connection = True
                return
            self._respond(response.get("then", self.server.script.default), body, messages, seen)
            return
        if isinstance(response, dict) and "raw_body" in response:
            data = str(response["raw_body"]).encode()
            try:
                self.send_response(int(response.get("status", 200)))
                self.send_header("Content-Type", response.get("content_type", "text/html"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return
        if isinstance(response, dict) and response.get("disconnect"):
            self.close_connection = True
            return
        if isinstance(response, dict) and "status" in response:
            status = int(response["status"])
            headers: dict[str, str] = {}
            if response.get("retry_after") is not None:
                retry_after = float(response["retry_after"])
                headers["Retry-After"] = f"{retry_after:g}"
                headers["retry-after-ms"] = str(int(retry_after * 1000))
            self._send_error(status, response.get("message") or f"scripted failure {status}", headers)
            return
        self._send_json(200, _completion(response, body, messages))


def _completion(response: Any, body: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    finish_reason = "stop"
    if isinstance(response, str):
        content = response
    elif isinstance(response, dict) and "content" in response:
        content = str(response["content"])
        usage = response.get("usage") or {}
        finish_reason = response.get("finish_reason", "stop")
    elif isinstance(response, dict) and "sql" in response:
        content = json.dumps({"sql": response["sql"], "explanation": response.get("explanation", "")})
    else:
        content = json.dumps(response)
    prompt_tokens = int(
        usage.get("prompt_tokens", sum(len(str(m.get("content") or "").split()) for m in messages))
    )
    completion_tokens = int(usage.get("completion_tokens", max(1, len(content.split()))))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def load_gold_csv(
    path: str | Path, question_column: str = "question", sql_column: str = "query"
) -> dict[str, str]:
    """question -> gold SQL from a CSV (the defog-sql-eval layout by default), for `{"gold": ...}`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {row[question_column]: row[sql_column] for row in csv.DictReader(handle)}


class _Calls:
    """Query helpers shared by the in-process and subprocess servers."""

    def requests(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def update(self, script: dict[str, Any]) -> None:
        raise NotImplementedError

    def calls(self, question: str) -> list[dict[str, Any]]:
        """Recorded chat requests whose question (first user message) is exactly `question`."""
        return [r for r in self.requests() if r["question"] == question]

    def add(self, question: str, *responses: Any) -> None:
        """Script (or re-script, resetting its counters) one question: one response per round."""
        self.update({"questions": {question: list(responses)}})

    def add_gold(self, gold: dict[str, str]) -> None:
        self.update({"gold": gold})

    def set_default(self, response: Any) -> None:
        self.update({"default": response})


class LlmServer(_Calls):
    """The server in a background thread of this process. `base_url` ends in `/v1`."""

    def __init__(
        self,
        script: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.script = Script(script)
        self._host = host
        self._server = _Server((host, port), self.script, api_key)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> LlmServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self) -> list[dict[str, Any]]:
        with self._server.requests_lock:
            return list(self._server.requests)

    def update(self, script: dict[str, Any]) -> None:
        self.script.update(script)

    def reset(self) -> None:
        """Forget recorded requests and `fail_times` counters (the script stays)."""
        with self._server.requests_lock:
            self._server.requests.clear()
        self.script.reset_counters()


class LlmServerProcess(_Calls):
    """The server as a child process (`python tests/support/llm_server.py`), for tests whose API and
    worker processes must reach it after this process has moved on. Same helpers as `LlmServer`."""

    def __init__(
        self, script: dict[str, Any] | None = None, *, api_key: str | None = None, port: int = 0
    ) -> None:
        self._script = script or {}
        self._api_key = api_key
        self._port = port
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.base_url).port or 0)

    def start(self) -> LlmServerProcess:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(self._script, handle)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--port",
            str(self._port),
            "--script",
            handle.name,
        ]
        if self._api_key is not None:
            command += ["--api-key", self._api_key]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        Path(handle.name).unlink(missing_ok=True)
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the LLM test server did not start (first line: {line!r})")
        self.base_url = line
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> LlmServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _http(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(  # only ever our own loopback server
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict[str, Any]]:
        return self._http("GET", "/_requests")

    def update(self, script: dict[str, Any]) -> None:
        self._http("POST", "/_script", script)

    def reset(self) -> None:
        self._http("POST", "/_reset", {})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Scripted OpenAI-compatible chat-completions server for tests."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", type=Path, help="script JSON (see the module docstring)")
    parser.add_argument("--gold-csv", type=Path, help="question,query CSV answered as gold SQL")
    parser.add_argument("--api-key", help="answer 401 unless 'Authorization: Bearer KEY'")
    args = parser.parse_args(argv)
    script: dict[str, Any] = json.loads(args.script.read_text()) if args.script else {}
    server = LlmServer(script, host=args.host, port=args.port, api_key=args.api_key)
    if args.gold_csv:
        server.add_gold(load_gold_csv(args.gold_csv))

    def _stop(*_: object) -> None:
        threading.Thread(target=server._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(server.base_url, flush=True)
    server.serve_forever()
    server._server.stopping.set()
    server._server.server_close()


if __name__ == "__main__":
    main()
