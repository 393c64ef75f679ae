"""``waitress.wasyncore`` behaves as ``bot.web.WebServer`` relies on.

``WebServer.serve_forever`` turns waitress's private event loop itself, one short
poll at a time, so that ``stop()`` from another thread is noticed and every socket
is closed in the loop's own thread (waitress's ``run()`` has no stop signal). It
relies on exactly this: ``wasyncore.loop(timeout=, map=, use_poll=True, count=1)``
returns after one pass even when nothing happens, serves the sockets of the map it
is given (not waitress's global one), and ``wasyncore.close_all(map)`` closes every
socket of that map and empties it. A waitress upgrade that changes any of it fails
here (design rule: a dependency's private API is used only with a test that pins it).
"""

from __future__ import annotations

import inspect
import socket
import threading
import urllib.request
from collections.abc import Iterable
from typing import Any

import pytest
import waitress
from waitress import wasyncore

from bot.web import LOOP_TIMEOUT, WebServer

DEADLINE = 10.0  # seconds: only ever waited in full when the behaviour is broken


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def server():
    socket_map: dict[int, Any] = {}
    server = waitress.create_server(hello, map=socket_map, host="127.0.0.1", port=0, threads=2)
    yield server, socket_map
    wasyncore.close_all(socket_map)
    server.task_dispatcher.shutdown()


def test_loop_takes_the_arguments_web_py_passes():
    params = inspect.signature(wasyncore.loop).parameters
    assert {"timeout", "use_poll", "map", "count"} <= set(params)
    assert "map" in inspect.signature(wasyncore.close_all).parameters


def test_one_pass_returns_when_nothing_happens(server):
    _, socket_map = server
    done = threading.Event()

    def one_pass() -> None:
        wasyncore.loop(timeout=LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
        done.set()

    threading.Thread(target=one_pass, daemon=True).start()
    assert done.wait(DEADLINE), "wasyncore.loop(count=1) did not return on an idle server"


def test_loop_serves_the_map_it_is_given_and_close_all_closes_it(server):
    http, socket_map = server
    assert socket_map and not set(socket_map) & set(wasyncore.socket_map)
    stop = threading.Event()

    def turn() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)

    driver = threading.Thread(target=turn, daemon=True)
    driver.start()
    url = f"http://127.0.0.1:{http.effective_port}/"
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            assert response.read() == b"hello"
    finally:
        stop.set()
        driver.join(DEADLINE)
    assert not driver.is_alive()

    wasyncore.close_all(socket_map)
    assert socket_map == {}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", http.effective_port), timeout=DEADLINE)


def test_web_server_stops_and_closes_its_port():
    """The same, through the class that uses it."""
    web = WebServer(hello, "127.0.0.1", 0, threads=2).start()
    with urllib.request.urlopen(web.url + "/", timeout=DEADLINE) as response:
        assert response.read() == b"hello"
    web.stop(timeout=DEADLINE)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web.port), timeout=DEADLINE)
