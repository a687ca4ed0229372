"""A caseworker's visit in a real browser: headless Chromium (Debian's chromium and
chromium-driver), driven by Selenium, logs in through the HTML form, searches for a recipient,
opens a receipt and logs out, checking every page for markup shown as text and saving a
screenshot of each.

The fast suite points it at gunicorn on loopback; the lab suite and the demo run it inside the
LGWAN terminal's network namespace (`nsenter`), so that the browser's traffic leaves from the
terminal's address, crosses the LGWAN link and the host firewalls, and reaches nginx over HTTPS
as a caseworker's would:

    python -m lab.browser --base https://10.231.10.10 --user kato --recipient 1234567 \\
        [--ca-file pki/ca.crt] [--screenshots DIR] [--json]      # the password on stdin

With --ca-file the browser trusts that CA alone (an NSS database of its own, made with
certutil) and verifies the server's certificate against it, name included.

The browser resolves no name but the application's host and runs no background service
(updates, sync, metrics): it sends nothing but what the pages ask for. Exit codes: 0 every
page worked and none showed escaped markup, 1 a page failed or showed escaped markup, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CERTUTIL = "/usr/bin/certutil"
# Markup that reached the screen as text: a tag, or an entity left unresolved. A page whose
# template was escaped twice shows exactly this where its form should be.
ESCAPED_MARKUP = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?>|&(?:[a-z]+|#[0-9]+);")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root in a container or CI; the pages are our own
    "--disable-gpu",
    "--window-size=1280,960",
    "--lang=ja",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--no-pings",
    "--no-proxy-server",
)


@dataclass
class Page:
    name: str
    url: str
    title: str
    escaped: list[str] = field(default_factory=list)
    screenshot: str | None = None


@dataclass
class Visit:
    ok: bool
    pages: list[Page]
    error: str | None = None


class VisitError(RuntimeError):
    pass


def escaped_markup(visible_text: str) -> list[str]:
    """What of the page's visible text is markup or an entity (at most five, shortened)."""
    return [m.group()[:60] for m in ESCAPED_MARKUP.finditer(visible_text)][:5]


def _trust_only(ca_file: Path, home: Path) -> None:
    """An NSS database in `home` (where Chromium on Linux looks) trusting `ca_file` for TLS."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for argv in (
        [CERTUTIL, "-d", f"sql:{db}", "-N", "--empty-password"],
        [CERTUTIL, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "claims-dc-ca", "-i", str(ca_file)],
    ):
        subprocess.run(argv, check=True, capture_output=True, timeout=30)


def visit(
    base_url: str,
    username: str,
    password: str,
    recipient: str,
    screenshots: Path | None = None,
    ca_file: Path | None = None,
    timeout: float = 30.0,
) -> Visit:
    """Log in through the form, search, open the first receipt found, log out."""
    # Long on purpose: one caseworker's visit as a browser makes it (log in, search, open, log out),
    # each page checked and photographed in turn
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    pages: list[Page] = []
    base = base_url.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="claims-dc-browser-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        if ca_file is not None:
            _trust_only(ca_file, home)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        # Nothing resolves but the application's own host: whatever else the browser might
        # want to reach, it cannot.
        options.add_argument(
            f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {urlsplit(base).hostname}"
        )
        options.add_argument(f"--user-data-dir={Path(scratch) / 'profile'}")
        service = Service(CHROMEDRIVER, env={**os.environ, "HOME": str(home)})
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(timeout)
        wait = WebDriverWait(driver, timeout)

        def look(name: str) -> Page:
            text = driver.find_element(By.TAG_NAME, "body").text
            page = Page(name, driver.current_url, driver.title, escaped_markup(text))
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                shot = screenshots / f"{len(pages) + 1:02d}-{name}.png"
                driver.save_screenshot(str(shot))
                page.screenshot = str(shot)
            pages.append(page)
            if page.escaped:
                raise VisitError(f"{name}: markup shown as text: {page.escaped}")
            return page

        try:
            driver.get(f"{base}/login")
            look("login")
            driver.find_element(By.ID, "username").send_keys(username)
            driver.find_element(By.ID, "password").send_keys(password)
            driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
            wait.until(ec.url_contains("/receipts"))
            look("search")
            driver.find_element(By.ID, "recipient").send_keys(recipient)
            driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.results")))
            look("results")
            driver.find_element(By.CSS_SELECTOR, "table.results tbody a").click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
            receipt = look("receipt")
            if recipient not in driver.find_element(By.TAG_NAME, "body").text:
                raise VisitError(f"receipt: recipient {recipient} not on {receipt.url}")
            driver.find_element(By.CSS_SELECTOR, "form.logout button[type=submit]").click()
            wait.until(ec.url_contains("/login"))
            look("logged-out")
            # Logged out for real: the search page sends the browser back to the login form.
            driver.get(f"{base}/receipts")
            wait.until(ec.url_contains("/login"))
        except (VisitError, WebDriverException) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Visit(False, pages, f"{type(exc).__name__}: {message[:300]}")
        finally:
            driver.quit()
    return Visit(True, pages)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lab.browser",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base", required=True, help="the application's URL, e.g. https://10.231.10.10")
    p.add_argument("--user", required=True, help="a caseworker's username")
    p.add_argument("--recipient", required=True, help="a recipient number to search for")
    p.add_argument("--ca-file", type=Path, help="trust this CA (PEM) and nothing else")
    p.add_argument("--screenshots", type=Path, help="save a PNG of each page here")
    p.add_argument("--json", action="store_true", help="the visit as JSON on stdout")
    args = p.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        p.error("give the password on stdin")
    result = visit(args.base, args.user, password, args.recipient, args.screenshots,
                   args.ca_file)  # fmt: skip
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False))
    else:
        for page in result.pages:
            print(f"{page.name}: {page.title} ({page.url})")
        print("ok" if result.ok else f"FAILED: {result.error}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())


@dataclass
class Printed:
    text: str  # what a reader sees
    escaped: list[str]  # markup or entities shown as text
    pdf: bytes  # the page as Chromium prints it (A4, as the page's @page asks)


def print_report(path: Path, timeout: float = 30.0) -> Printed:
    """Open a report file in Chromium with nothing else to resolve, read what it shows, and
    print it to PDF."""
    import base64

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.print_page_options import PrintOptions

    with tempfile.TemporaryDirectory(prefix="claims-dc-browser-") as scratch:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND")
        options.add_argument(f"--user-data-dir={Path(scratch) / 'profile'}")
        service = Service(CHROMEDRIVER, env={**os.environ, "HOME": scratch})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(timeout)
            driver.get(path.resolve().as_uri())
            text = driver.find_element(By.TAG_NAME, "body").text
            pdf = base64.b64decode(driver.print_page(PrintOptions()))
        finally:
            driver.quit()
    return Printed(text, escaped_markup(text), pdf)
