"""The life of a local HTTP server the vendor fakes share (``pennylane_fake``, ``xero_fake``,
``stripe_fake``): a threading ``http.server`` on 127.0.0.1 (port 0: a free one), started and
stopped by ``start``/``stop`` or as a context manager. Development tool: not shipped in the wheel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHttpServer:
    """A threading HTTP server on 127.0.0.1 serving ``handler`` (a request handler class);
    subclasses hold the vendor's state and build their handler around ``self``."""

    def _listen(self, handler: Callable[..., BaseHTTPRequestHandler], port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"
