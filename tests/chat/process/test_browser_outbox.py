"""The browser client's outbox, in Chromium, against the real chat server: every line
carries an id (wslab.chat.rules.wire, "The line's id") and waits in ``#outbox`` until a
frame carrying its id comes back; after a reconnection the page sends the waiting lines
again with the same ids, so a line is neither lost nor stored twice.

Reuses the ``browser``, ``open_tab_at`` and ``open_tab`` fixtures of
tests/chat/process/test_browser.py (skipped, or failed under
``WSLAB_REQUIRE_BROWSER=1``, without Chromium). A lost echo is made with Playwright's
``route_web_socket``: the page's WebSocket goes through Playwright to the real server,
and one chosen frame from the server is swallowed before the connection is cut (one
test puts in its place the error frame a Valkey failover may answer a stored line with:
the only frame here that the server did not write).
"""

from __future__ import annotations

import json
import re

import test_browser
from test_browser import MESSAGE_ITEMS, RECONNECT_TIMEOUT_MS, Tab

# test_browser.py's fixtures, found here by name.
browser = test_browser.browser
open_tab_at = test_browser.open_tab_at
open_tab = test_browser.open_tab
server = test_browser.server

ID = re.compile(r"[0-9a-f]{32}")  # 16 random bytes in hex


def _says(frames: list[str]) -> list[dict]:
    """The "say" frames among the frames a page sent (JSON text), in order."""
    parsed = (json.loads(frame) for frame in frames)
    return [frame for frame in parsed if frame.get("type") == "say"]


def _texts(tab: Tab) -> list[tuple[int, str, str]]:
    return [(m["offset"], m["from"], m["text"]) for m in tab.messages()]


class EchoLoss:
    """Routes a tab's WebSockets through Playwright to the server, every frame passed
    on both ways except the first message whose text is ``text``, which is swallowed
    (the server stored the line; the page never hears of it); :meth:`cut` then ends
    the connection, as a network failure would, and may hold the network down (every
    new connection closed at once, before it reaches the server) until :meth:`heal`.

    ``refusal``: an error text sent to the page in the swallowed echo's place, with its
    line's id, as a store that failed over answers (refused, yet stored after all);
    :meth:`late_echo` then lets the echo through."""

    def __init__(self, tab: Tab, ws_url: str, text: str, *, refusal: str | None = None) -> None:
        self.text = text
        self.refusal = refusal
        self.sent: list[str] = []  # every frame the page sent, on every connection
        self.swallowed: list[dict] = []
        self.down = False
        self._current = None
        tab.page.route_web_socket(ws_url, self._route)

    def _route(self, page_side) -> None:
        if self.down:
            page_side.close()
            return
        server_side = page_side.connect_to_server()
        self._current = (page_side, server_side)

        def to_server(message) -> None:
            self.sent.append(message)
            server_side.send(message)

        def to_page(message) -> None:
            frame = json.loads(message)
            mine = frame.get("type") == "message" and frame.get("text") == self.text
            if mine and not self.swallowed:
                self.swallowed.append(frame)
                if self.refusal is not None:
                    error = {"type": "error", "text": self.refusal, "id": frame["id"]}
                    page_side.send(json.dumps(error))
                return
            page_side.send(message)

        page_side.on_message(to_server)
        server_side.on_message(to_page)

    def cut(self, *, hold: bool = False) -> None:
        self.down = hold
        page_side, server_side = self._current
        server_side.close()
        page_side.close()

    def heal(self) -> None:
        self.down = False

    def late_echo(self) -> None:
        page_side, _ = self._current
        page_side.send(json.dumps(self.swallowed[0]))


def test_a_line_carries_an_id_and_its_echo_clears_the_outbox(open_tab):
    from playwright.sync_api import expect

    ana = open_tab("ana", "segredo-ana")
    outbox = ana.page.locator("#outbox")
    expect(outbox).to_be_hidden()
    ana.send("primeira")
    ana.send("segunda")
    ana.wait_offset(2)

    says = _says(ana.sent)
    assert [say["text"] for say in says] == ["primeira", "segunda"]
    assert all(ID.fullmatch(say["id"]) for say in says)
    assert says[0]["id"] != says[1]["id"]
    # Each echo carries its line's id, and took the line out of the outbox.
    for offset, say in enumerate(says, start=1):
        item = ana.page.locator(f"{MESSAGE_ITEMS}[data-offset='{offset}']")
        expect(item).to_have_attribute("data-id", say["id"])
    expect(outbox).to_have_attribute("data-count", "0")
    expect(outbox.locator("li")).to_have_count(0)
    expect(outbox).to_be_hidden()


def test_a_line_typed_while_the_connection_is_down_is_delivered_once(open_tab, server):
    from playwright.sync_api import expect

    ana = open_tab("ana", "segredo-ana")
    joao = open_tab("joao", "segredo-joao")
    joao.send("antes do corte")
    ana.wait_offset(1)

    # Cut ana's connection and keep her offline: her retries fail meanwhile.
    ana.page.context.set_offline(True)
    server.drop(ana.session())
    expect(ana.status).to_have_attribute("data-state", "reconnecting")
    ana.send("escrita sem conexão")

    # The line left the box for the outbox, shown as waiting; nothing was sent.
    outbox = ana.page.locator("#outbox")
    expect(outbox).to_have_attribute("data-count", "1")
    expect(outbox).to_be_visible()
    expect(outbox.locator("li .text")).to_have_text(["escrita sem conexão"])
    expect(ana.page.locator("#line")).to_have_value("")
    assert _says(ana.sent) == []

    ana.page.context.set_offline(False)
    ana.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
    joao.wait_offset(2)
    ana.wait_offset(2)
    expect(outbox).to_have_attribute("data-count", "0")
    expect(outbox).to_be_hidden()
    # A line sent after it comes after it: had the line been stored twice, the marker
    # would be offset 4 and joao would have seen the line twice before it.
    ana.send("marcador")
    joao.wait_offset(3)
    expected = [
        (1, "joao", "antes do corte"),
        (2, "ana", "escrita sem conexão"),
        (3, "ana", "marcador"),
    ]
    assert _texts(joao) == expected
    ana.wait_offset(3)
    assert _texts(ana) == expected
    says = _says(ana.sent)
    assert [say["text"] for say in says] == ["escrita sem conexão", "marcador"]
    item = ana.page.locator(f"{MESSAGE_ITEMS}[data-offset='2']")
    expect(item).to_have_attribute("data-id", says[0]["id"])


def test_a_line_whose_echo_was_lost_is_sent_again_with_its_id_and_stored_once(open_tab, server):
    from playwright.sync_api import expect

    joao = open_tab("joao", "segredo-joao")
    ana = open_tab("ana")
    network = EchoLoss(ana, server.ws_url, "sem eco")
    ana.login("segredo-ana")

    ana.send("sem eco")
    joao.wait_offset(1)  # stored and delivered; ana's echo is swallowed
    outbox = ana.page.locator("#outbox")
    expect(outbox).to_have_attribute("data-count", "1")
    expect(outbox.locator("li .text")).to_have_text(["sem eco"])
    assert network.swallowed and network.swallowed[0]["from"] == "ana"
    assert ana.offsets() == []
    first_session = ana.session()

    network.cut()
    ana.page.wait_for_function(
        "s => document.getElementById('status').dataset.session !== s",
        arg=first_session,
        timeout=RECONNECT_TIMEOUT_MS,
    )
    ana.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
    # The page sent the line again with the same id; the server did not store it
    # again, and the resume brought back the stored copy, which cleared the outbox.
    ana.wait_offset(1)
    expect(outbox).to_have_attribute("data-count", "0")
    says = _says(network.sent)
    assert [say["text"] for say in says] == ["sem eco", "sem eco"]
    assert says[0]["id"] == says[1]["id"] == network.swallowed[0]["id"]
    assert [(m["offset"], m["replayed"]) for m in ana.messages()] == [(1, True)]

    ana.send("marcador")
    joao.wait_offset(2)
    ana.wait_offset(2)
    expected = [(1, "ana", "sem eco"), (2, "ana", "marcador")]
    assert _texts(joao) == expected
    assert _texts(ana) == expected
    # The server answered the line sent again ("already stored", with its id) after
    # the replay had answered it: not news, not shown.
    stored = ana.page.locator("#messages li", has_text="já estava guardada")
    expect(stored).to_have_count(0)


def test_a_line_first_sent_too_long_ago_is_not_sent_again_but_handed_back(open_tab, server):
    """Past 240 s (under the server's 300 s), an unanswered line could be stored twice:
    the page drops it with a notice instead; a line never sent is sent, whatever its
    age. The page's clock is Playwright's, fixed and moved by hand (timers run)."""
    from playwright.sync_api import expect

    joao = open_tab("joao", "segredo-joao")
    ana = open_tab("ana")
    network = EchoLoss(ana, server.ws_url, "velha")
    start = 1_800_000_000_000  # ms since the epoch
    ana.page.clock.set_fixed_time(start)
    ana.login("segredo-ana")
    ana.send("velha")
    joao.wait_offset(1)
    expect(ana.page.locator("#outbox")).to_have_attribute("data-count", "1")

    network.cut(hold=True)
    ana.page.clock.set_fixed_time(start + 241_000)
    expect(ana.status).to_have_attribute("data-state", "reconnecting")
    ana.send("nova")  # typed while away: never sent, so sent whatever its age
    expect(ana.page.locator("#outbox")).to_have_attribute("data-count", "2")
    network.heal()
    ana.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
    joao.wait_offset(2)
    ana.wait_offset(2)

    notice = ana.page.locator("#messages li[data-kind='local']", has_text="pode não ter")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("«velha»")
    expect(ana.page.locator("#outbox")).to_have_attribute("data-count", "0")
    assert [say["text"] for say in _says(network.sent)] == ["velha", "nova"]
    expected = [(1, "ana", "velha"), (2, "ana", "nova")]
    assert _texts(joao) == expected
    assert _texts(ana) == expected


def test_a_refused_line_comes_back_into_the_box_and_goes_again_with_its_id(open_tab):
    from playwright.sync_api import expect

    joao = open_tab("joao", "segredo-joao")
    errors = joao.page.locator("#messages li[data-kind='error']")
    line = joao.page.locator("#line")

    joao.send("/msg ninguem oi")
    expect(errors).to_have_count(1)
    expect(errors).to_contain_text("ninguem")
    expect(line).to_have_value("/msg ninguem oi")
    expect(joao.page.locator("#outbox")).to_have_attribute("data-count", "0")

    joao.page.press("#line", "Enter")  # unchanged: the same line, the same id
    expect(errors).to_have_count(2)
    expect(line).to_have_value("/msg ninguem oi")

    joao.page.fill("#line", "/msg ninguem olá")  # edited: another line, another id
    joao.page.press("#line", "Enter")
    expect(errors).to_have_count(3)
    expect(line).to_have_value("/msg ninguem olá")

    says = _says(joao.sent)
    assert [say["text"] for say in says] == ["/msg ninguem oi"] * 2 + ["/msg ninguem olá"]
    assert says[0]["id"] == says[1]["id"] != says[2]["id"]
    assert joao.status.get_attribute("data-state") == "connected"


def test_a_refused_line_that_is_stored_after_all_leaves_the_box(open_tab, server):
    """With Valkey HA a line refused as not confirmed may still be stored, and then
    delivered: the page takes it back out of the box, so Enter cannot send it twice."""
    from playwright.sync_api import expect

    joao = open_tab("joao", "segredo-joao")
    ana = open_tab("ana")
    refusal = "a mensagem não foi confirmada (se ela não aparecer, envie de novo)"
    network = EchoLoss(ana, server.ws_url, "talvez", refusal=refusal)
    ana.login("segredo-ana")
    line = ana.page.locator("#line")

    ana.send("talvez")
    joao.wait_offset(1)  # stored: joao has it; ana got the error instead
    expect(ana.page.locator("#messages li[data-kind='error']")).to_contain_text(refusal)
    expect(line).to_have_value("talvez")
    assert ana.offsets() == []

    network.late_echo()
    ana.wait_offset(1)
    expect(line).to_have_value("")
    notice = ana.page.locator("#messages li[data-kind='local']", has_text="apareceu")
    expect(notice).to_have_count(1)
    expect(ana.page.locator("#outbox")).to_have_attribute("data-count", "0")
    says = _says(network.sent)
    assert [say["text"] for say in says] == ["talvez"]
    item = ana.page.locator(f"{MESSAGE_ITEMS}[data-offset='1']")
    expect(item).to_have_attribute("data-id", says[0]["id"])
