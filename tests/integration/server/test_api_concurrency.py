"""Many concurrent writers against a real uvicorn server: no request fails, every job is stored once.

More clients than uvicorn has worker threads (40), so a design where a writer must wait for a free thread while
holding the database's write lock would deadlock here.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from integration.server.stargate_harness import Harness

CLIENTS = 60
JOBS_EACH = 4


@pytest.mark.slow
def test_concurrent_submissions_and_reads_never_fail(harness: Harness, make_harness: Callable[[str], Harness]) -> None:
    server = uvicorn.Server(uvicorn.Config(harness.app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    headers = harness.headers()

    def client(n: int) -> Counter[int]:
        codes: Counter[int] = Counter()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
            for i in range(JOBS_EACH):
                body = {"name": f"c{n}-{i}", "queue": "alpha-q", "gpus": 1, "command": "true"}
                codes[http.post("/api/v1/jobs", json=body).status_code] += 1
                codes[http.get("/api/v1/queues").status_code] += 1
        return codes

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            codes = sum(pool.map(client, range(CLIENTS)), Counter())
    finally:
        server.should_exit = True
        thread.join(10)
    assert codes == {201: CLIENTS * JOBS_EACH, 200: CLIENTS * JOBS_EACH}
    queues = {q["id"]: q for q in harness.client.get("/api/v1/queues", headers=headers).json()}
    assert queues["alpha-q"]["pending_jobs"] == CLIENTS * JOBS_EACH
