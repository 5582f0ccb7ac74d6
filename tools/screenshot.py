"""The README's picture of the chat: two users in two browser tabs, a public and a private message.

    python -m tools.screenshot [output.png]   # default: exported/chat_screenshot.png

Starts the real chat server (wslab.chat.testing.ChatServer) on loopback, opens Debian's
Chromium through Playwright (no browser download), logs ana and joao in, in separate
contexts as two people would, sends one public and one private message, and saves both
tabs side by side in one PNG. Without Chromium it says so and exits 1, leaving any
committed PNG untouched (``make report`` only calls it when Chromium is present).
"""

from __future__ import annotations

import base64
import shutil
import sys
from pathlib import Path

from wslab.chat.testing import ChatServer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "exported" / "chat_screenshot.png"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 5_000  # every wait in the page
VIEWPORT = {"width": 560, "height": 430}
PEOPLE = (("ana", "segredo-da-ana"), ("joao", "segredo-do-joao"))
LINES = (
    ("ana", "Bom dia, pessoal!"),
    ("joao", "Bom dia, ana!"),
    ("ana", "/msg joao almoço ao meio-dia?"),
)


def _chromium() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def capture(output: Path = OUTPUT) -> None:
    """Run the scene and write the PNG (raises RuntimeError without Chromium)."""
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    if executable is None:
        raise RuntimeError(
            "Chromium não encontrado: rode `make browser` para instalar o pacote chromium."
        )
    with ChatServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=LAUNCH_ARGS
        )
        try:
            pages = {}
            for user, secret in PEOPLE:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(server.url, wait_until="domcontentloaded")
                page.fill("#login-name", user)
                page.fill("#login-secret", secret)
                page.click("#login-button")
                page.wait_for_selector("#status[data-state='connected']")
                pages[user] = page
            for offset, (user, line) in enumerate(LINES, start=1):
                pages[user].fill("#line", line)
                pages[user].press("#line", "Enter")
                for page in pages.values():  # every message of this scene reaches both tabs
                    page.wait_for_selector(f"#messages li[data-offset='{offset}']")
            shots = [base64.b64encode(page.screenshot()).decode() for page in pages.values()]
            sheet = browser.new_page(
                viewport={"width": 2 * VIEWPORT["width"] + 24, "height": VIEWPORT["height"]}
            )
            sheet.set_content(
                '<body style="margin:0;background:#999;display:flex;gap:24px">'
                + "".join(f'<img src="data:image/png;base64,{shot}">' for shot in shots)
                + "</body>"
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            sheet.screenshot(path=str(output))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else OUTPUT
    try:
        capture(output)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"captura de tela do chat em {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
