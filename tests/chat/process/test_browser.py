"""The browser client (wslab/chat/net/static) against the real chat server, in Chromium.

Each test starts its own :class:`ChatServer` (so offsets start at 1 and are known in
advance) and opens every tab in a fresh browser context, as separate people would.
The page exposes its state through the DOM: ``#status[data-state][data-session]`` and
one ``#messages li`` per message with ``data-offset``, ``data-kind``, ``data-from``,
``data-to`` and ``data-replayed``.

The browser is Debian's Chromium, driven by Playwright without any browser download.
Without it (or without Playwright) these tests are skipped, unless
``WSLAB_REQUIRE_BROWSER=1`` (CI) asks for a failure instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from chatclient import WAIT, chat_server

from wslab.chat.testing import ChatServer

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = round(1000 * WAIT)  # every Playwright wait and expect
# Coming back from a cut may wait out one backoff step (capped at 10 s); the page
# reconnects at once on the "online" event, so this is only a bound.
RECONNECT_TIMEOUT_MS = 2 * TIMEOUT_MS

MESSAGE_ITEMS = "#messages li[data-offset]"
READ_MESSAGES = """items => items.map(item => ({
    offset: Number(item.dataset.offset),
    kind: item.dataset.kind,
    from: item.dataset.from,
    to: item.dataset.to,
    replayed: item.dataset.replayed === "true",
    text: item.querySelector(".text").textContent,
    epoch: item.dataset.epoch,
}))"""


def _unavailable(reason: str) -> None:
    """Skip, or fail when the environment demands the browser (CI)."""
    if os.environ.get("WSLAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (WSLAB_REQUIRE_BROWSER=1: o teste do navegador é obrigatório)")
    pytest.skip(reason)


def _find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable(
            "Playwright não está instalado: rode `make test`, que instala requirements.txt."
        )
    executable = _find_chromium()
    if executable is None:
        _unavailable(
            "Chromium não encontrado: rode `make browser` (instala o pacote chromium do "
            "Debian) para rodar o teste do cliente no navegador."
        )
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        try:
            launched = playwright.chromium.launch(
                executable_path=executable, headless=True, args=LAUNCH_ARGS, timeout=6 * TIMEOUT_MS
            )
        except PlaywrightError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            _unavailable(
                f"O Playwright não conseguiu abrir o Chromium em {executable}: {first_line}"
            )
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as running:
        yield running


@dataclass
class Tab:
    """One browser tab (in its own context) of one user."""

    page: object
    user: str
    sockets: list = field(default_factory=list)  # every WebSocket the page opened
    sent: list[str] = field(default_factory=list)  # every frame the page sent, in order
    problems: list[str] = field(default_factory=list)  # page errors, CSP violations

    def watch(self, socket) -> None:
        self.sockets.append(socket)
        socket.on("framesent", lambda payload: self.sent.append(payload))

    @property
    def status(self):
        return self.page.locator("#status")

    def login(self, secret: str, *, wait: bool = True, name: str | None = None) -> None:
        self.page.fill("#login-name", name if name is not None else self.user)
        self.page.fill("#login-secret", secret)
        self.page.click("#login-button")
        if wait:
            self.wait_connected()

    def wait_connected(self, timeout: float = TIMEOUT_MS) -> str:
        from playwright.sync_api import expect

        expect(self.status).to_have_attribute("data-state", "connected", timeout=timeout)
        return self.session()

    def session(self) -> str:
        return self.status.get_attribute("data-session")

    def send(self, line: str) -> None:
        self.page.fill("#line", line)
        self.page.press("#line", "Enter")

    def wait_offset(self, offset: int) -> None:
        self.page.wait_for_selector(f"{MESSAGE_ITEMS}[data-offset='{offset}']")

    def messages(self) -> list[dict]:
        return self.page.eval_on_selector_all(MESSAGE_ITEMS, READ_MESSAGES)

    def offsets(self) -> list[int]:
        return [message["offset"] for message in self.messages()]


@pytest.fixture
def open_tab_at(browser) -> Iterator[Callable[..., Tab]]:
    """Factory: a tab for ``user`` on the page of ``url``, in a fresh context, logged in
    unless told not to; at the end, no tab may have logged a page error."""
    contexts = []
    tabs: list[Tab] = []

    def open_(url: str, user: str, secret: str | None = None) -> Tab:
        context = browser.new_context()
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(page, user)
        tabs.append(tab)
        page.on("websocket", tab.watch)
        page.on("pageerror", lambda error: tab.problems.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                tab.problems.append(f"console: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto(url, wait_until="domcontentloaded")  # app.js is deferred: it ran
        if secret is not None:
            tab.login(secret)
        return tab

    yield open_
    for context in contexts:
        context.close()
    problems = {tab.user: tab.problems for tab in tabs if tab.problems}
    assert not problems, f"a página registrou erros: {problems}"


@pytest.fixture
def open_tab(open_tab_at, server) -> Callable[..., Tab]:
    """Factory: a new tab for ``user`` on the test's server (see ``open_tab_at``)."""
    return lambda user, secret=None: open_tab_at(server.url, user, secret)


def test_private_reaches_every_tab_of_its_user_and_nobody_else(open_tab, server):
    from playwright.sync_api import expect

    ana1 = open_tab("ana", "segredo-ana")
    ana2 = open_tab("ana", "segredo-ana")
    joao = open_tab("joao", "segredo-joao")
    bia = open_tab("bia", "segredo-bia")
    assert len({ana1.session(), ana2.session(), joao.session(), bia.session()}) == 4

    bia.send("oi, pessoal")
    for tab in (ana1, ana2, joao, bia):
        tab.wait_offset(1)

    joao.send("/msg ana só para você")
    joao.send("agora para todos")
    for tab in (ana1, ana2, joao, bia):
        tab.wait_offset(3)

    private = {
        "offset": 2,
        "kind": "private",
        "from": "joao",
        "to": "ana",
        "replayed": False,
        "text": "só para você",
        "epoch": server.epoch,
    }
    for tab in (ana1, ana2, joao):
        assert tab.offsets() == [1, 2, 3]
        assert tab.messages()[1] == private
    # bia got offset 3 after 2 on the same connection: 2 was never sent to her.
    assert bia.offsets() == [1, 3]
    assert [m["kind"] for m in bia.messages()] == ["public", "public"]
    assert bia.messages()[0]["text"] == "oi, pessoal"

    item = ana1.page.locator(f"{MESSAGE_ITEMS}[data-offset='2']")
    expect(item).to_have_class(re.compile(r"\bmsg-private\b"))
    expect(item.locator(".badge-private")).to_have_text("privada")

    # /who answers only the asking tab; a /msg to a stranger is an error, not a close.
    ana2.send("/who")
    expect(ana2.page.locator("#messages li[data-kind='system']")).to_have_text(
        re.compile(r"Online agora: ana, bia, joao\.")
    )
    joao.send("/msg ninguem oi")
    expect(joao.page.locator("#messages li[data-kind='error']")).to_contain_text("ninguem")
    expect(joao.status).to_have_attribute("data-state", "connected")
    assert ana1.page.locator("#messages li[data-kind='system']").count() == 0


def test_cut_tab_resumes_and_shows_missed_messages_once(open_tab, server):
    from playwright.sync_api import expect

    ana = open_tab("ana", "segredo-ana")
    ana_other = open_tab("ana", "segredo-ana")
    joao = open_tab("joao", "segredo-joao")
    bia = open_tab("bia", "segredo-bia")

    bia.send("antes do corte")
    ana.wait_offset(1)
    first_session = ana.session()

    # Cut the connection with no close frame, and keep the tab offline so that every
    # message below is sent while it is really away (its retries fail meanwhile).
    ana.page.context.set_offline(True)
    server.drop(first_session)
    expect(ana.status).to_have_attribute("data-state", "reconnecting")
    expect(ana.status).to_have_text(re.compile(r"reconectando"))
    assert first_session not in server.session_ids()

    bia.send("durante o corte 1")  # 2 public
    joao.send("/msg ana perdeu isto?")  # 3 private to ana
    joao.send("/msg bia isto não é da ana")  # 4 private, not for ana
    ana_other.send("/msg joao escrevi da outra aba")  # 5 private from ana
    bia.send("durante o corte 2")  # 6 public
    joao.wait_offset(6)
    expect(ana.status).not_to_have_attribute("data-state", "connected")
    assert ana.offsets() == [1]

    ana.page.context.set_offline(False)
    second_session = ana.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
    assert second_session != first_session
    hellos = [json.loads(frame) for frame in ana.sent if '"hello"' in frame]
    assert [hello["resume"] for hello in hellos] == [
        None,
        {"epoch": server.epoch, "offset": 1},
    ]
    ana.wait_offset(6)

    messages = ana.messages()
    assert [m["offset"] for m in messages] == [1, 2, 3, 5, 6]
    assert [m["replayed"] for m in messages] == [False, True, True, True, True]
    assert [m["text"] for m in messages[1:]] == [
        "durante o corte 1",
        "perdeu isto?",
        "escrevi da outra aba",
        "durante o corte 2",
    ]
    replayed = ana.page.locator(f"{MESSAGE_ITEMS}[data-replayed='true'] .badge-replayed")
    expect(replayed).to_have_count(4)
    expect(replayed.first).to_have_text("reenviada")
    # The last line no longer says the connection fell: the page says it is back.
    expect(ana.page.locator("#messages li[data-kind='local']").last).to_contain_text("Reconectado")

    # Live again: a new message arrives once, not replayed, after the replayed ones.
    bia.send("depois do corte")
    ana.wait_offset(7)
    assert ana.offsets() == [1, 2, 3, 5, 6, 7]
    assert ana.messages()[-1]["replayed"] is False
    # The resume point is kept per tab.
    saved = ana.page.evaluate("JSON.parse(sessionStorage.getItem('wslab.chat.resume.ana'))")
    assert saved == {"epoch": server.epoch, "offset": 7}
    # The other tab of ana was never cut: everything live, nothing replayed.
    assert ana_other.offsets() == [1, 2, 3, 5, 6, 7]
    assert not any(m["replayed"] for m in ana_other.messages())
    expect(ana_other.page.locator("#messages li[data-kind='local']")).to_have_count(0)

    # A first login gets the recent history: badged "histórico", not "reenviada".
    late = open_tab("bia", "segredo-bia")
    late.wait_offset(7)
    assert late.offsets() == [1, 2, 4, 6, 7] and all(m["replayed"] for m in late.messages())
    badges = late.page.locator(f"{MESSAGE_ITEMS} .badge-replayed")
    expect(badges).to_have_count(5)
    expect(badges).to_have_text(["histórico"] * 5)


def test_user_text_is_shown_as_text_and_long_lines_stay_in_the_box(open_tab):
    from playwright.sync_api import expect

    ana = open_tab("ana", "segredo-ana")
    bia = open_tab("bia", "segredo-bia")

    hostile = [
        '<img src=x onerror="document.body.dataset.pwned = 1">',
        "<b>negrito?</b>",
        "/msg ana <script>document.body.dataset.pwned = 2</script>",
    ]
    for line in hostile:
        bia.send(line)
    ana.wait_offset(3)

    texts = [m["text"] for m in ana.messages()]
    assert texts == [hostile[0], hostile[1], "<script>document.body.dataset.pwned = 2</script>"]
    for element in ("img", "b", "script"):
        expect(ana.page.locator(f"#messages {element}")).to_have_count(0)
    assert ana.page.evaluate("document.body.dataset.pwned") is None

    # Above 2000 characters the page refuses to send and keeps the line.
    sent_before = len(ana.sent)
    too_long = "x" * 2001
    ana.send(too_long)
    expect(ana.page.locator("#messages li[data-kind='local']")).to_contain_text("2001")
    expect(ana.page.locator("#line")).to_have_value(too_long)
    assert len(ana.sent) == sent_before
    ana.send("é" * 2000)  # at the limit (characters, not bytes): accepted
    ana.wait_offset(4)
    expect(ana.page.locator("#line")).to_have_value("")


def test_wrong_secret_shows_the_reason_and_does_not_retry(open_tab, server):
    from playwright.sync_api import expect

    owner = open_tab("ana", "certo")
    intruder = open_tab("ana")
    intruder.login("errado", wait=False)

    expect(intruder.page.locator("#login-error")).to_contain_text("Senha errada")
    expect(intruder.page.locator("#login")).to_be_visible()
    expect(intruder.page.locator("#chat")).to_be_hidden()
    expect(intruder.status).to_have_attribute("data-state", "closed")
    # The first backoff step is at most 0.5 s: a retry would have happened by now.
    intruder.page.wait_for_timeout(1_200)
    assert len(intruder.sockets) == 1
    expect(intruder.status).to_have_attribute("data-state", "closed")
    assert server.session_ids() == [owner.session()]

    # A malformed name is refused in the page, without a connection.
    intruder.login("x", wait=False, name="ana maria")
    expect(intruder.page.locator("#login-error")).to_contain_text("Nome inválido")
    assert len(intruder.sockets) == 1

    # With the right secret the same tab gets in.
    intruder.login("certo")
    assert sorted(server.session_ids()) == sorted([owner.session(), intruder.session()])


def test_server_restart_goes_away_with_1001_and_new_epoch_offsets_are_shown(open_tab, server):
    from playwright.sync_api import expect

    ana = open_tab("ana", "segredo-ana")
    joao = open_tab("joao", "segredo-joao")
    joao.send("antes do reinício 1")
    joao.send("antes do reinício 2")
    ana.wait_offset(2)
    old_epoch, port = server.epoch, server.port

    server.stop()  # every connection closed with 1001: the pages keep trying
    expect(ana.status).to_have_attribute("data-state", "reconnecting")
    expect(ana.page.locator("#messages li[data-kind='local']")).to_contain_text("1001")

    with chat_server(port=port) as restarted:
        assert restarted.epoch != old_epoch
        ana.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
        joao.wait_connected(timeout=RECONNECT_TIMEOUT_MS)
        # The server says offsets started over; the page must not drop offset 1 of the
        # new epoch as a duplicate of offset 1 of the old one.
        expect(ana.page.locator("#messages li[data-kind='system']")).to_contain_text("época")
        joao.send("depois do reinício")
        new_first = f"{MESSAGE_ITEMS}[data-epoch='{restarted.epoch}'][data-offset='1']"
        ana.page.wait_for_selector(new_first)
        assert [(m["offset"], m["epoch"] == old_epoch) for m in ana.messages()] == [
            (1, True),
            (2, True),
            (1, False),
        ]
        assert ana.messages()[-1]["text"] == "depois do reinício"
