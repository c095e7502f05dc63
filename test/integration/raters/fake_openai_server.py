"""A scripted OpenAI-compatible chat-completions server for tests (stdlib only; run as a script).

    python fake_openai_server.py        # prints "PORT <n>" once listening on 127.0.0.1

Control endpoints (JSON):
    POST /_script     {"steps": [...], "repeat_last": true}  replace the script, clear the log
    GET  /_requests   every chat request so far: {"path", "body", "authorization"} + max in flight

Each POST /v1/chat/completions consumes the next step (the last one repeats):
    {"reply": "Good"}                      a normal completion with that content
    {"reply": "Good", "logprobs": [["Good", -0.1], ["Bad", -2.4]]}   plus first-token logprobs
    {"reply": "The arm is good at", "finish_reason": "length"}  a reply cut off by max_tokens
    {"echo_enum": 2}                       {"rating": <enum[2] of the request's json schema>}
    {"refusal": "I can't help"}            message.refusal set, content null
    {"status": 429, "headers": {"Retry-After": "1"}}   an error status (with an error body)
    {"raw": "{not json"}                   200 with this body verbatim
    {"reject_response_format": true, "reply": "Good"}  400 if response_format was sent, else reply
    any step may add "delay": seconds before answering.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# "in_flight" counts requests of the current script only (a timed-out request of an earlier test
# may still be sleeping in its handler thread).
STATE = {"steps": [{"reply": "Good"}], "i": 0, "requests": [], "gen": 0, "in_flight": 0, "max_in_flight": 0}
LOCK = threading.Lock()


def completion(content: str | None, refusal: str | None = None, logprobs: list | None = None,
               finish_reason: str = "stop") -> dict:
    choice = {"index": 0, "finish_reason": finish_reason,
              "message": {"role": "assistant", "content": content, "refusal": refusal}}
    if logprobs:
        top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in logprobs]
        choice["logprobs"] = {"content": [{"token": logprobs[0][0], "logprob": logprobs[0][1], "bytes": None,
                                           "top_logprobs": top}]}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": "fake-vlm", "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _json(self, status: int, obj: object, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def do_GET(self) -> None:
        if self.path == "/_requests":
            with LOCK:
                self._json(200, {"requests": STATE["requests"], "max_in_flight": STATE["max_in_flight"]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if self.path == "/_script":
            data = json.loads(raw)
            with LOCK:
                STATE.update(steps=data["steps"], i=0, requests=[], gen=STATE["gen"] + 1, in_flight=0,
                             max_in_flight=0)
            self._json(200, {"ok": True})
            return
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(raw)
        with LOCK:
            step = STATE["steps"][min(STATE["i"], len(STATE["steps"]) - 1)]
            STATE["i"] += 1
            STATE["requests"].append({"path": self.path, "body": body,
                                      "authorization": self.headers.get("Authorization", "")})
            gen = STATE["gen"]
            STATE["in_flight"] += 1
            STATE["max_in_flight"] = max(STATE["max_in_flight"], STATE["in_flight"])
        try:
            time.sleep(float(step.get("delay", 0.0)))
            self._answer(step, body)
        finally:
            with LOCK:
                if STATE["gen"] == gen:
                    STATE["in_flight"] -= 1

    def _answer(self, step: dict, body: dict) -> None:
        if "status" in step:
            err = {"error": {"message": step.get("message", f"scripted {step['status']}"), "type": "fake",
                             "code": step["status"]}}
            self._json(int(step["status"]), err, step.get("headers"))
        elif "raw" in step:
            self._send(200, step["raw"].encode())
        elif "refusal" in step:
            self._json(200, completion(None, refusal=step["refusal"]))
        elif step.get("reject_response_format") and "response_format" in body:
            self._json(400, {"error": {"message": "response_format is not supported", "type": "invalid"}})
        elif "echo_enum" in step:
            enum = body["response_format"]["json_schema"]["schema"]["properties"]["rating"]["enum"]
            self._json(200, completion(json.dumps({"rating": enum[int(step["echo_enum"])]})))
        else:
            self._json(200, completion(step.get("reply", ""), logprobs=step.get("logprobs"),
                                       finish_reason=step.get("finish_reason", "stop")))


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
