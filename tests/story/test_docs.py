"""Docs cannot rot: every ``paytoken`` command in a fenced ``sh`` block parses with the
real CLI, the ones that need no device run, every JSON example parses and matches an
API model, and every picture the docs show exists."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from paytoken import cli
from paytoken.backend.api import schemas as api
from paytoken.backend.api import wallet as online_api

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
# Commands that run here as they are written (no device, no server, no secrets).
RUNNABLE = {"simulate-year"}


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for m in FENCE.finditer(doc.read_text()):
            if m.group(1) == lang:
                out.append((doc.name, m.group(2)))
    return out


def paytoken_lines() -> list[tuple[str, str]]:
    lines = []
    for name, body in blocks("sh"):
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("paytoken "):
                lines.append((name, line))
    return lines


def test_there_are_commands_to_check() -> None:
    names = {n for n, _ in paytoken_lines()}
    assert {"FACTORY.md", "YEAR.md"} <= names


@pytest.mark.parametrize(("doc", "line"), paytoken_lines())
def test_every_documented_command_parses(doc: str, line: str) -> None:
    argv = shlex.split(line)[1:]
    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse prints why on stderr
        pytest.fail(f"{doc}: `{line}` does not parse (exit {e.code})")
    assert callable(args.func)


@pytest.mark.parametrize(("doc", "line"), [(d, ln) for d, ln in paytoken_lines()
                                           if shlex.split(ln)[1] in RUNNABLE])
def test_runnable_commands_run(doc: str, line: str) -> None:
    p = subprocess.run([sys.executable, "-m", "paytoken", *shlex.split(line)[1:]],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{doc}: {line}\n{p.stderr[-2000:]}"
    assert "accepted" in p.stdout


MODELS = [api.PaymentOut, api.TokenOut, api.ClockSyncOut, api.UnlockAuthOut, api.RefundOut,
          api.PaymentIn, api.RefundIn, api.NonceIn, online_api.OnlineCodesOut, online_api.OnlineCodesIn,
          online_api.WalletOut]


@pytest.mark.parametrize(("doc", "body"), blocks("json"))
def test_json_examples_parse_and_match_a_model(doc: str, body: str) -> None:
    data = json.loads(body)
    assert isinstance(data, dict)
    fits = [m for m in MODELS if set(data) == set(m.model_fields)]
    assert fits, f"{doc}: {sorted(data)} matches no API model"
    fits[0].model_validate(data)


def test_pictures_exist() -> None:
    for doc in DOCS:
        for src in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc.read_text()):
            assert (doc.parent / src).is_file(), f"{doc.name}: missing picture {src}"


def test_readme_first_screen_gives_the_two_commands() -> None:
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make demo" in head and "make test" in head


def test_virtual_token_ports_are_the_ones_vdev_start_prints() -> None:
    # `vdev start --flash DIR` prints DIR.hw/tty: a doc's --port for a virtual token is that.
    for doc in DOCS:
        lines = [ln for d, ln in paytoken_lines() if d == doc.name]
        flashes = {shlex.split(ln)[shlex.split(ln).index("--flash") + 1]
                   for ln in lines if " vdev start " in f" {ln} "}
        for ln in lines:
            argv = shlex.split(ln)
            port = argv[argv.index("--port") + 1] if "--port" in argv else ""
            assert not port.startswith("/dev/pts/"), f"{doc.name}: `{ln}`: vdev start prints DIR.hw/tty"
            if port.endswith(".hw/tty"):
                assert port[: -len(".hw/tty")] in flashes, f"{doc.name}: `{ln}`: no vdev start for it"


def test_the_factory_page_sets_up_the_issuer_database_first() -> None:
    cmds = [" ".join(shlex.split(ln)[1:3]) for d, ln in paytoken_lines() if d == "FACTORY.md"]
    order = [cmds.index(c) for c in ("db new-master-key", "db init", "scheme add")]
    assert order == sorted(order) and max(order) < cmds.index("provision --port"), cmds
