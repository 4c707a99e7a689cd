"""A replica that answers like a model server, for trying services on a laptop (Python's standard library only).

It listens on 127.0.0.1:$PORT, answers GET /health with 200 once its cold start is over (503 before), and answers
POST /v1/completions (an OpenAI-style completion: ``prompt`` or ``prompt_tokens``, ``max_tokens``, ``stream``) after
the time the profile gives, with continuous batching: a request waits for one of ``--max-concurrent-sequences``
slots, prefills its prompt at ``--prefill-tokens-per-s``, then gains one output token per decode step, and a step of
``b`` sequences (those holding a slot) takes ``step(b)``, the line through ``--decode-step-s`` at one sequence and
``max_concurrent_sequences / --decode-tokens-per-s`` at a full batch (as ``ReplicaProfile.step_s``). With
``"stream": true`` the answer is server-sent events, the first one after the first token. Its ``usage`` says the
prompt and output tokens. A prompt given as text counts one token per 4 characters.

    PORT=8001 python3 examples/services/replica.py --cold-start-s 2
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
MAX_BODY = 1 << 20


class Profile:
    """A replica's speed (the figures of a ReplicaProfile) and its batch of sequences holding a slot."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.prefill = args.prefill_tokens_per_s
        self.batch = args.max_concurrent_sequences
        self.full_step = self.batch / args.decode_tokens_per_s
        self.single_step = args.decode_step_s if args.decode_step_s is not None else self.full_step / 2
        self.slots = threading.BoundedSemaphore(self.batch)
        self.holding = 0
        self.lock = threading.Lock()

    def step_s(self, batch: int) -> float:
        """One decode step of ``batch`` sequences, s."""
        if self.batch == 1:
            return self.single_step
        slope = (self.full_step - self.single_step) / (self.batch - 1)
        return self.single_step + slope * (max(batch, 1) - 1)

    def hold(self, change: int) -> None:
        with self.lock:
            self.holding += change


def tokens_of(request: dict) -> tuple[int, int]:
    """(prompt tokens, output tokens) a completion request asks for."""
    prompt = request.get("prompt_tokens")
    if not isinstance(prompt, int) or prompt < 0:
        text = request.get("prompt", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        prompt = max(1, len(text) // 4)
    output = request.get("max_tokens", 16)
    if not isinstance(output, int) or output < 1:
        output = 16
    return prompt, min(output, 100_000)


def generate(profile: Profile, prompt: int, output: int, emit) -> None:
    """Wait for a slot, prefill, decode ``output`` tokens; ``emit(n)`` after each run of ``n`` new tokens."""
    with profile.slots:
        profile.hold(1)
        try:
            time.sleep(prompt / profile.prefill)
            done = 0
            while done < output:
                step = profile.step_s(profile.holding)
                run = 1 if done == 0 else min(output - done, max(1, int(0.05 / step)))  # a first token, then 50 ms
                time.sleep(run * step)
                done += run
                emit(run)
        finally:
            profile.hold(-1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without this a peer's delayed ACK adds 40 ms
    profile: Profile
    cold_start_s: float
    name = os.environ.get("STARGATE_SERVICE", "replica")

    def log_message(self, format: str, *args: object) -> None:  # one line per request would drown the job's log
        pass

    def ready(self) -> bool:
        return time.monotonic() - STARTED >= self.cold_start_s

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/health":
            self.reply(200 if self.ready() else 503, {"status": "ok" if self.ready() else "starting"})
        else:
            self.reply(404, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.reply(413, {"error": "body over 1 MiB"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.reply(400, {"error": "the body is not JSON"})
            return
        if self.path.split("?")[0] != "/v1/completions" or not isinstance(request, dict):
            self.reply(404, {"error": f"no route POST {self.path}"})
            return
        if not self.ready():
            self.reply(503, {"error": "starting"})
            return
        prompt, output = tokens_of(request)
        usage = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
        answer = {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time())}
        answer["model"] = self.name
        if request.get("stream"):
            self.stream(prompt, output, answer, usage)
            return
        generate(self.profile, prompt, output, lambda n: None)
        text = " tok" * output
        self.reply(200, {**answer, "choices": [{"index": 0, "text": text, "finish_reason": "length"}], "usage": usage})

    def stream(self, prompt: int, output: int, answer: dict, usage: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(data: str) -> None:
            chunk = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()

        def emit(n: int) -> None:
            event(json.dumps({**answer, "choices": [{"index": 0, "text": " tok" * n, "finish_reason": None}]}))

        generate(self.profile, prompt, output, emit)
        event(json.dumps({**answer, "choices": [{"index": 0, "text": "", "finish_reason": "length"}], "usage": usage}))
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="A replica that answers like a model server.")
    parser.add_argument("--prefill-tokens-per-s", type=float, default=4000.0)
    parser.add_argument("--decode-tokens-per-s", type=float, default=800.0, help="With a full batch.")
    parser.add_argument("--max-concurrent-sequences", type=int, default=8)
    parser.add_argument("--decode-step-s", type=float, default=None, help="One sequence; default: half a full one.")
    parser.add_argument("--cold-start-s", type=float, default=0.0, help="Seconds before /health answers 200.")
    args = parser.parse_args()
    port = int(os.environ.get("PORT", "8000"))
    Handler.profile, Handler.cold_start_s = Profile(args), args.cold_start_s
    ThreadingHTTPServer.request_queue_size = 1024  # the default 5 drops a burst of new connections (1 s retries)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    replica = os.environ.get("STARGATE_REPLICA", "-")
    print(f"replica {replica} of {Handler.name} listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    print("stopped", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
