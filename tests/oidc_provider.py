"""A real OpenID provider for the tests: tests/oidc/provider.mjs (npm oidc-provider) in Node.

`provider(...)` starts it on a free port of 127.0.0.1 and yields its issuer URL;
`npm ci` installs its locked packages first when tests/oidc/node_modules is missing
(.ci/run does the same). `sign_in_at_provider` is the browser's part of a sign-in,
driven with httpx: the portal's redirect to the provider, the provider's own login
form, and back to the portal's callback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

FIXTURE = Path(__file__).resolve().parent / "oidc"
SECRET = "portal-client-secret-for-tests-only"

_install_lock = threading.Lock()


def password_of(user: str) -> str:
    return f"{user}-sso-password"


NODE_AT_LEAST = (20, 12)
"""oidc-provider 9 uses crypto.hash (Node 20.12); Debian 12's own nodejs is 18."""


def node_or_skip() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("CI"):
            pytest.fail("node and npm are missing; .ci/run installs nodejs and npm")
        pytest.skip("needs node and npm (apt-get install nodejs npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    found = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if found < NODE_AT_LEAST:
        pytest.fail(
            f"node {version.strip()} is too old for oidc-provider 9: it needs "
            f"{'.'.join(map(str, NODE_AT_LEAST))} or newer (Debian 13's nodejs, or NodeSource's)"
        )
    return node


def ensure_installed() -> None:
    with _install_lock:
        if (FIXTURE / "node_modules" / "oidc-provider").is_dir():
            return
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=FIXTURE,
            check=True,
            capture_output=True,
            timeout=300,
        )


@contextmanager
def provider(redirect_uris: list[str], groups_in: str = "id_token") -> Iterator[str]:
    """Run the provider until the block ends; yields its issuer (http://127.0.0.1:PORT)."""
    node = node_or_skip()
    ensure_installed()
    env = {
        **os.environ,
        "REDIRECT_URIS": ",".join(redirect_uris),
        "CLIENT_SECRET": SECRET,
        "GROUPS_IN": groups_in,
    }
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [node, "provider.mjs"],
            cwd=FIXTURE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            line = process.stdout.readline()  # the provider prints its issuer once it listens
            if not line:
                process.wait(10)
                errors.seek(0)
                raise AssertionError(f"the OpenID provider did not start:\n{errors.read()}")
            yield json.loads(line)["issuer"]
        finally:
            process.terminate()
            process.wait(10)


def sign_in_at_provider(start: httpx.Response, issuer: str, user: str, password: str) -> str:
    """Follow the portal's redirect through the provider's login; returns the callback URL
    the provider sends the browser back to (the code and state in its query)."""
    location = start.headers["location"]
    assert location.startswith(f"{issuer}/auth?"), location
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        answer = browser.get(location)
        while answer.status_code in (302, 303):
            answer = browser.get(urljoin(issuer, answer.headers["location"]))
        assert answer.status_code == 200, answer.text
        action = re.search(r'action="([^"]+)"', answer.text).group(1)
        answer = browser.post(urljoin(issuer, action), data={"login": user, "password": password})
        while answer.status_code in (302, 303):
            location = urljoin(issuer, answer.headers["location"])
            if not location.startswith(issuer):
                return location  # back to the portal
            answer = browser.get(location)
        raise AssertionError(f"the provider did not send the browser back: {answer.text[:500]}")
