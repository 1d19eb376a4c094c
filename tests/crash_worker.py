"""A sync worker that dies by SIGKILL at a chosen step of the push (for tests/integration/
test_crash.py).

    DATABASE_URL=sqlite:///<file> python -m tests.crash_worker FLOW_ID STEP [--at N]

runs ``syncs.services.flow_sync`` for the flow in this process, against the database of
``DATABASE_URL`` (the test's file database), and kills itself with SIGKILL the N-th time (default
1) the run reaches STEP, one of:

- ``before_write``: ``TrytonTarget.create_entries`` is entered. The batch is committed as
  ``pushing``; nothing of it has been sent to Tryton.
- ``before_post``: the batch's moves were created in Tryton (drafts); ``account.move.post`` is about
  to be sent.
- ``attachment``: the moves are created and posted; the ``ir.attachment`` create carrying their
  PDFs is about to be sent.
- ``attachment_sent``: Tryton stored the PDFs; the worker dies before reading the answer.
- ``after_write``: ``create_entries`` returned; the records are not yet saved as synced
  (``syncs.run.writes.record_results``, which saves them in one transaction).
- ``none``: no kill (a plain worker).

Right before dying it prints ``crash_worker: SIGKILL at <step> #<N>`` on stdout, so that the test
can tell its own kill from any other. A run that ends prints ``crash_worker: run <id> <status>``.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys

STEPS = ("before_write", "before_post", "attachment", "attachment_sent", "after_write", "none")


def _die(step: str, count: int) -> None:
    print(f"crash_worker: SIGKILL at {step} #{count}", flush=True)
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install(step: str, at: int) -> None:
    """Wrap the one function where ``step`` happens; the wrapper kills on its ``at``-th hit."""
    from connectors.providers.tryton.client import TrytonClient
    from connectors.providers.tryton.target import TrytonTarget
    from syncs.run import writes

    hits = 0

    def hit() -> bool:
        nonlocal hits
        hits += 1
        return hits == at

    def wrap(owner, name, *, before, after=None):
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            if before(*args, **kwargs) and hit():
                _die(step, hits)
            result = original(*args, **kwargs)
            if after is not None and after(*args, **kwargs) and hit():
                _die(step, hits)
            return result

        setattr(owner, name, wrapper)

    def always(*args, **kwargs) -> bool:
        return True

    def never(*args, **kwargs) -> bool:
        return False

    def argument(args, kwargs, index: int, name: str):
        """An argument of a TrytonClient method (``args[0]`` is the client)."""
        return args[index] if len(args) > index else kwargs.get(name)

    def attachment_create(*args, **kwargs) -> bool:
        return argument(args, kwargs, 1, "model") == "ir.attachment"

    def move_post(*args, **kwargs) -> bool:
        return (argument(args, kwargs, 1, "model"), argument(args, kwargs, 2, "button")) == (
            "account.move",
            "post",
        )

    if step == "before_write":
        wrap(TrytonTarget, "create_entries", before=always)
    elif step == "before_post":
        wrap(TrytonClient, "execute", before=move_post)
    elif step == "attachment":
        wrap(TrytonClient, "create", before=attachment_create)
    elif step == "attachment_sent":
        wrap(TrytonClient, "create", before=never, after=attachment_create)
    elif step == "after_write":
        wrap(writes, "record_results", before=always)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow_id", type=int)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--at", type=int, default=1, help="kill on the N-th hit of the step")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("DATABASE_URL must name the test's database")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "invsync.settings")
    import django

    django.setup()

    from mappings.models import SyncFlow
    from syncs.services import flow_sync

    _install(args.step, args.at)
    run = flow_sync(flow=SyncFlow.objects.get(pk=args.flow_id), trigger="manual")
    if run is None:
        print("crash_worker: busy (another run holds the lease)", flush=True)
    else:
        print(f"crash_worker: run {run.pk} {run.status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
