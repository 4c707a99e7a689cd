"""A bounded load generator for a service behind Stargate's proxy (Python's standard library only).

Sends completion requests (200 prompt tokens, 50 output tokens by default) at a steady rate for a while, each on a
thread of its own, then prints how many were answered, how many failed and the latencies:

    python3 examples/services/load.py --service local-chat --rate 8 --duration 20 --token-file .stargate/admin-token

The token is ``--token-file``'s, else ``STARGATE_TOKEN``'s. Exit code 0 when every request was answered 200, else 1.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="Send requests to a service through Stargate's proxy.")
    parser.add_argument("--url", default=os.environ.get("STARGATE_URL", "http://127.0.0.1:8642"))
    parser.add_argument("--service", default="local-chat")
    parser.add_argument("--rate", type=float, default=8.0, help="Requests per second, 0.1 to 1000.")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of load, 1 to 3600.")
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=50)
    parser.add_argument("--token-file", default=None)
    args = parser.parse_args()
    if not (0.1 <= args.rate <= 1000 and 1 <= args.duration <= 3600):
        sys.exit("error: --rate must be 0.1 to 1000 requests/s and --duration 1 to 3600 s")
    token = Path(args.token_file).read_text().strip() if args.token_file else os.environ.get("STARGATE_TOKEN", "")
    url = f"{args.url.rstrip('/')}/services/{args.service}/v1/completions"
    body = json.dumps({"prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens}).encode()
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one() -> None:
        started = time.perf_counter()
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=180) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        with lock:
            results.append((status, time.perf_counter() - started))

    count = int(args.rate * args.duration)
    print(f"sending {count} requests to {url} at {args.rate:g}/s for {args.duration:g} s", flush=True)
    start = time.perf_counter()
    threads = []
    for n in range(count):
        delay = start + n / args.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    ok = sorted(s for status, s in results if status == 200)
    failed = len(results) - len(ok)
    if ok:
        p50, p99 = ok[len(ok) // 2], ok[min(len(ok) - 1, int(len(ok) * 0.99))]
        print(f"answered {len(ok)}, failed {failed}; latency p50 {p50:.2f} s, p99 {p99:.2f} s", flush=True)
    else:
        print(f"answered 0, failed {failed}", flush=True)
    codes = sorted({status for status, _ in results if status != 200})
    if codes:
        print(f"failures by status: {', '.join(str(c) for c in codes)} (0: no answer)", flush=True)
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
