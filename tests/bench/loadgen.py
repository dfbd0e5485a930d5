"""Open-loop HTTP load generator for ``POST /v1/payments`` on loopback.

Request k is due at ``start + k / rate`` whatever the server does (open loop), on one
of a set of keep-alive HTTP/1.1 connections; latency is measured from the due time, so
a server that falls behind shows it. Plain asyncio streams with a hand-written request:
the client must cost the 2 cores far less than the server. Bounded in count and time.

Usage (a separate process; prints one JSON line)::

    python tests/bench/loadgen.py --port 8080 --key KEY --rate 500 --codes codes.txt
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time


def _pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


async def _run(host: str, port: int, key: str, codes: list[str], rate: float, conns: int,
               deadline_s: float, prefix: str) -> dict:
    head = (f"POST /v1/payments HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n")
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        idle.put_nowait(await asyncio.open_connection(host, port))
    lat: list[float] = []
    errors = {"refused": 0, "http": 0, "io": 0}

    async def one(k: int, code: str, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        reader, writer = await idle.get()
        body = json.dumps({"code": code, "amount": 1, "currency": "CNY",
                           "merchant_order_id": f"{prefix}{k}"}).encode()
        try:
            writer.write(head.replace("{n}", str(len(body))).encode() + body)
            status = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
            lat.append(time.perf_counter() - due)
            if b" 200 " not in status:
                errors["http"] += 1
            elif b'"succeeded"' not in answer:
                errors["refused"] += 1
            idle.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors["io"] += 1
            writer.close()
            idle.put_nowait(await asyncio.open_connection(host, port))

    start = time.perf_counter() + 0.1
    tasks = [asyncio.ensure_future(one(k, c, start + k / rate)) for k, c in enumerate(codes)]
    done, pending = await asyncio.wait(tasks, timeout=len(codes) / rate + deadline_s)
    for t in pending:
        t.cancel()
    elapsed = max(time.perf_counter() - start, 1e-9)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return {"offered": rate, "sent": len(codes), "answered": len(lat), "unanswered": len(pending),
            "achieved": len(lat) / elapsed if not pending else len(lat) / (len(codes) / rate + deadline_s),
            "p50_ms": statistics.median(lat) * 1e3 if lat else float("nan"),
            "p99_ms": _pct(lat, 99) * 1e3, "max_ms": max(lat) * 1e3 if lat else float("nan"),
            "errors": errors, "connections": conns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True, help="merchant API key")
    ap.add_argument("--codes", required=True, help="file of payment codes, one a line")
    ap.add_argument("--rate", type=float, default=500.0, help="payments per second offered")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--deadline", type=float, default=20.0, help="seconds allowed after the last send")
    ap.add_argument("--prefix", default="lg", help="merchant_order_id prefix")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen: loopback only")
    with open(a.codes) as f:
        codes = [line.strip() for line in f if line.strip()]
    gc.disable()  # a bounded run: the client's own collector pauses must not count as latency
    print(json.dumps(asyncio.run(_run(a.host, a.port, a.key, codes, a.rate, a.conns, a.deadline, a.prefix))))


if __name__ == "__main__":
    main()
