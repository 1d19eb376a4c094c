"""One run of a flow, cut along its seams (the protocol: syncs/services.py's docstring).

- state.py: what a run carries (:class:`~syncs.run.state.RunState`), a chunk, record helpers;
- orchestrate.py: the run loop (``execute``): stuck pushes, source, held records, chunks;
- partners.py: a chunk's partners (links, search, matching, creation);
- writes.py: PDFs, crash-safe pushes, batch writes, outcomes;
- recovery.py: what a dead run left, the other keys an entry may carry.

Only syncs.services starts a run (``flow_sync``); these modules never import it.
"""
