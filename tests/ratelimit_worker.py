"""A process that sends pretend requests through a connection's shared rate limiter and prints,
as JSON, when each one was sent and when it ended (Unix time), for tests/integration/
test_ratelimit_shared.py. The "request" sleeps ``--duration`` seconds (jittered) inside its slot,
so the server would receive it at some instant between the two times.

    python -m tests.ratelimit_worker KEY --limit 4/0.3 --count 15 [--duration 0.02]

Runs against the database of ``DATABASE_URL``; ``INVSYNC_RATE_LIMIT_STORE`` picks the store.
``--in-transaction``: each request is sent inside the caller's own transaction. Starts sending
at ``--start`` (Unix time), so that every worker begins at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("key")
    parser.add_argument("--limit", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--duration", type=float, default=0.02)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument(
        "--in-transaction", action="store_true", help="send each request inside transaction.atomic"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "invsync.settings")
    import django

    django.setup()
    from django.db import transaction

    from connectors.models import Client
    from connectors.ratelimit import parse_rate_limit
    from connectors.ratelimit_store import limiter_store, shared_limiter

    limiter = shared_limiter(args.key, parse_rate_limit(args.limit), hold=args.hold)
    time.sleep(max(0.0, args.start - time.time()))
    sent = []
    for _ in range(args.count):
        with transaction.atomic() if args.in_transaction else contextlib.nullcontext():
            if args.in_transaction:
                # A write of the caller's own first, as a form's save would do.
                Client.objects.filter(pk=-1).update(name="x")
            with limiter.slot():
                began = time.time()
                time.sleep(args.duration * random.uniform(0.5, 1.5))
                sent.append((began, time.time()))
    json.dump({"store": limiter_store(), "limiter": repr(limiter), "requests": sent}, sys.stdout)


if __name__ == "__main__":
    main()
