"""The web pages' fixtures: one real site per test module, Debian's Chromium."""

from __future__ import annotations

import os

import pytest

from .site import Site, browser, have_chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site.build(tmp_path_factory.mktemp("site"), os.urandom(32).hex())
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A fresh headless Chromium context. In CI (CI=true) a missing browser fails."""
    if not have_chromium():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium missing in CI: `make test` installs Debian's chromium")
        pytest.skip("no /usr/bin/chromium: run `make test` (as root it installs Debian's chromium)")
    with browser(tmp_path_factory.mktemp("profile")) as ctx:
        yield ctx
