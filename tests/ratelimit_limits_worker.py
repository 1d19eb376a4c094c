"""A process that sends pretend requests through one account's several windows and concurrency cap
(connectors.ratelimit_store.shared_limits) and prints, as JSON, when each was sent and when it
ended (Unix time), for tests/integration/test_rate_limits_shared.py.

    python -m tests.ratelimit_limits_worker KEY --limits '{"windows": [[4, 0.3]], "concurrency": 2}'
        --count 12 [--duration 0.05] [--start UNIX_TIME] [--hold 60] [--app-key APP]
    python -m tests.ratelimit_limits_worker KEY --limits ... --hang

``--hang``: take one slot, print "held" and never release it (the test kills the process).
Runs against the database of ``DATABASE_URL``; ``INVSYNC_RATE_LIMIT_STORE`` picks the store.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("key")
    parser.add_argument("--limits", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--duration", type=float, default=0.05)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--app-key", default="")
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "invsync.settings")
    import django

    django.setup()
    from connectors.ratelimit import APP, Limits, Window
    from connectors.ratelimit_store import limiter_store, shared_limits

    spec = json.loads(args.limits)
    limits = Limits(
        tuple(Window(r, s, per=APP if len(w) > 2 else "account") for w in spec["windows"]
              for r, s in [w[:2]]),
        concurrency=spec.get("concurrency"),
    )  # fmt: skip
    limiter = shared_limits(args.key, limits, app_key=args.app_key, hold=args.hold)
    if args.hang:
        limiter.acquire()
        print("held", flush=True)
        time.sleep(3600)
        return
    time.sleep(max(0.0, args.start - time.time()))
    sent = []
    for _ in range(args.count):
        with limiter.slot():
            began = time.time()
            time.sleep(args.duration * random.uniform(0.5, 1.5))
            sent.append((began, time.time()))
    json.dump({"store": limiter_store(), "requests": sent}, sys.stdout)


if __name__ == "__main__":
    main()
