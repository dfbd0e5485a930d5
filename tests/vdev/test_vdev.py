"""Virtual tokens driven by the stock mpremote and pyserial, as stations drive boards."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import serial
from mpremote.transport_serial import SerialTransport
from paytoken import vhw
from paytoken.station import ops
from paytoken.station.transport import Device, DeviceError
from paytoken.vdev.supervisor import sigint_installed
from vdevkit import mpremote, paytoken, start_vdev
from waits import LATE, STEP, bound, wait_for

pytestmark = pytest.mark.timeout(120)


def _read_for(s: serial.Serial, seconds: float, until: bytes | None = None) -> bytes:
    end = time.monotonic() + seconds
    out = b""
    while time.monotonic() < end:
        out += s.read(4096)
        if until is not None and until in out:
            break
    return out


def _wait(cond, seconds: float = STEP) -> None:
    wait_for(cond, seconds)


def _sync(dev: Device) -> None:
    # The token answers every line once, in order: once the answer to a fresh tag is
    # read, no older answer (to a client's stale input) is left to be taken for ours.
    for _ in range(50):
        tag = os.urandom(4).hex()
        if dev.line(f"SYNC {tag}") == f"OK {tag}":
            return
    raise AssertionError("the token never answered a SYNC tag")


def test_several_tokens_exec_eval_fs(vdevs, tmp_path: Path) -> None:
    toks = [vdevs(tmp_path / f"tok{i}") for i in range(3)]
    assert len({t.port for t in toks}) == 3
    for i, t in enumerate(toks):
        assert os.path.realpath(t.port).startswith("/dev/pts/")
        r = mpremote(t.port, "exec", "print(1+1)")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "2\n"
        r = mpremote(t.port, "eval", f"{i} * 10 + 1")
        assert r.stdout.strip() == str(i * 10 + 1)
        local = tmp_path / f"data{i}.bin"
        local.write_bytes(bytes(range(256)) * 4 + f"token {i}".encode())
        r = mpremote(t.port, "fs", "cp", str(local), ":data.bin", "+", "fs", "ls")
        assert r.returncode == 0, r.stderr
        assert "data.bin" in r.stdout
    # each token's flash folder got its own file, byte for byte
    for i, t in enumerate(toks):
        assert (t.flash / "data.bin").read_bytes() == (tmp_path / f"data{i}.bin").read_bytes()
    # the hardware folder's path is not visible in the token's root
    r = mpremote(toks[0].port, "eval", "__import__('os').listdir('/')")
    assert r.stdout.strip() == "['data.bin']"


def test_clean_stop_ends_the_interpreter(tmp_path: Path) -> None:
    tok = start_vdev(tmp_path / "tok")
    try:
        _wait(lambda: tok.child_pid() is not None)
        child = tok.child_pid()
        assert Path(f"/proc/{child}").exists()
    finally:
        rc = tok.stop()
    assert rc == 0
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    assert not (tok.hw / "tty").exists()  # the device path goes with it


def test_soft_reset_and_resume(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    assert mpremote(t.port, "exec", "x = 41").returncode == 0
    # resume: no soft reset, the REPL's globals are still there
    r = mpremote(t.port, "resume", "exec", "print(x + 1)")
    assert r.stdout.strip() == "42", r.stderr
    # without resume mpremote soft-resets: a fresh interpreter
    r = mpremote(t.port, "exec", "print('x' in globals())")
    assert r.stdout.strip() == "False"
    r = mpremote(t.port, "soft-reset", "eval", "1")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr


def test_friendly_repl_line_endings_and_ctrl_c(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    with serial.Serial(t.port, timeout=0.1) as s:
        s.write(b"\r\x03")
        assert _read_for(s, bound(STEP), b">>> ").endswith(b">>> ")
        s.write(b"print('a\\nb')\r")
        out = _read_for(s, bound(STEP), b"\r\n>>> ")
        assert b"a\r\nb\r\n>>> " in out
        assert b"\r\r" not in out and b"\n\n" not in out
        # Ctrl-C interrupts a running loop (as a signal: the byte alone would not)
        s.write(b"while True: pass\r\r")
        # the loop runs once the interpreter holds its SIGINT handler (what the supervisor
        # looks at): a Ctrl-C before that would stay a byte at the prompt
        _wait(lambda: (c := t.child_pid()) is not None and sigint_installed(c))
        s.write(b"\x03")
        out = _read_for(s, bound(STEP), b">>> ")
        assert b"KeyboardInterrupt" in out and out.endswith(b">>> ")
        # the interpreter survived: same REPL, still answering
        s.write(b"6*7\r")
        assert b"42\r\n>>> " in _read_for(s, bound(STEP), b"42\r\n>>> ")
    # raw mode passes bytes untouched: bare LF from print
    st = SerialTransport(t.port)
    try:
        st.enter_raw_repl()
        out, err = st.exec_raw(b"print('a\\nb')")
        assert out == b"a\nb\n" and err == b""
        st.exit_raw_repl()
    finally:
        st.close()


def test_flash_folder_cannot_be_escaped(vdevs, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("host secret")
    t = vdevs(tmp_path / "tok")
    code = (
        "import os\n"
        "r=[]\n"
        "for p in ('/../outside.txt','../outside.txt','/a/../../outside.txt','//../outside.txt',"
        f"{str(tmp_path / 'outside.txt')!r}):\n"
        " try:\n  open(p).read();r.append('READ '+p)\n except OSError:\n  r.append('no')\n"
        "os.mkdir('/d');os.chdir('/d');os.chdir('../..')\n"
        "r.append(os.getcwd())\n"
        "open('../../escape.txt','w').write('x')\n"
        "r.append(sorted(os.listdir('/..')))\n"
        "print(r)\n"
    )
    r = mpremote(t.port, "exec", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['no', 'no', 'no', 'no', 'no', '/', ['d', 'escape.txt']]"
    assert (t.flash / "escape.txt").read_text() == "x"  # landed inside the flash folder
    assert not (tmp_path / "escape.txt").exists()
    # mpremote's own paths
    r = mpremote(t.port, "fs", "cp", ":../outside.txt", str(tmp_path / "got.txt"))
    assert r.returncode != 0 and not (tmp_path / "got.txt").exists()
    (tmp_path / "up.txt").write_text("up")
    r = mpremote(t.port, "fs", "cp", str(tmp_path / "up.txt"), ":../../up2.txt")
    assert (t.flash / "up2.txt").read_text() == "up" and not (tmp_path / "up2.txt").exists()
    # temp + rename works inside the folder (VfsPosix(root).rename would not)
    r = mpremote(t.port, "exec", "import os; open('t.tmp','w').write('1'); os.rename('t.tmp','t.txt')")
    assert r.returncode == 0 and (t.flash / "t.txt").read_text() == "1", r.stderr


def test_symlink_in_flash_refused(tmp_path: Path) -> None:
    flash = tmp_path / "tok"
    flash.mkdir()
    os.symlink("/etc", flash / "etc")
    r = paytoken("vdev", "start", "--flash", str(flash), timeout=30)
    assert r.returncode == 1
    assert "symlink" in r.stderr


@pytest.mark.parametrize("battery", [True, False])
def test_power_off_on_rtc(vdevs, tmp_path: Path, battery: bool) -> None:
    t = vdevs(tmp_path / "tok")
    flash = str(t.flash)
    r = paytoken("vdev", "set-rtc", "--flash", flash, "--battery", "on" if battery else "off")
    assert r.returncode == 0, r.stderr
    assert mpremote(t.port, "exec", "print('up')").stdout.strip() == "up"
    _wait(lambda: t.child_pid() is not None)
    child = t.child_pid()
    assert paytoken("vdev", "power-off", "--flash", flash).returncode == 0
    _wait(lambda: t.child_pid() is None)  # the supervisor noticed and killed it
    assert not vhw.is_powered(t.hw)
    time.sleep(0.3)
    assert t.child_pid() is None  # and keeps it dead
    with pytest.raises(DeviceError, match="no answer"):
        with Device(t.port, timeout=1.5) as dev:
            dev.eval("1")
    state = vhw.rtc_state(t.hw)
    assert state["running"] is battery
    assert (vhw.rtc_time(t.hw) is not None) is battery
    assert paytoken("vdev", "power-on", "--flash", flash).returncode == 0
    _wait(lambda: t.child_pid() not in (None, child))
    r = mpremote(t.port, "eval", "2+2")
    assert r.stdout.strip() == "4", r.stderr
    state = vhw.rtc_state(t.hw)
    assert state["running"] is True
    assert state["lost"] is (not battery)  # without a battery the time is gone


def test_wedged_interpreter_times_out_then_hard_reset(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    # a fresh token boots twice before it answers (boot, then the raw REPL's soft reset):
    # on a busy machine that takes more than the station's default
    with Device(t.port, timeout=bound(STEP)) as dev:
        assert dev.eval("1+1") == 2
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no answer within 2 s"):
            dev.exec("import micropython\nmicropython.kbd_intr(-1)\nwhile True: pass", timeout=2)
        # it gave up at its own deadline (2 s), not at the test's timeout (120 s)
        assert 2 <= time.monotonic() - t0 < 2 + bound(LATE)
    # Ctrl-C is a byte now (kbd_intr(-1)): the station's next call times out, not hangs
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="no answer"):
        with Device(t.port, timeout=2) as dev:
            dev.eval("1")
    assert 2 <= time.monotonic() - t0 < 2 + bound(LATE)
    child = t.child_pid()
    assert child is not None  # a byte never killed it
    r = paytoken("vdev", "reset", "--flash", str(t.flash))
    assert r.returncode == 0, r.stderr
    with Device(t.port, timeout=bound(STEP)) as dev:
        assert dev.eval("'alive'") == "alive"
    assert t.child_pid() != child


def test_locked_token_line_protocol_never_killed_by_ctrl_c(vdevs, tmp_path: Path) -> None:
    flash = tmp_path / "tok"
    flash.mkdir()
    # a minimal locked firmware: Ctrl-C off, one reply per line
    (flash / "main.py").write_text(
        "import micropython, sys\n"
        "micropython.kbd_intr(-1)\n"
        "while True:\n"
        " l = sys.stdin.readline()\n"
        " if not l: break\n"
        " l = l.strip()\n"
        " if l[:5] == 'SYNC ': print('OK ' + l[5:])\n"
        " elif l: print('OK pong' if l == 'PING' else 'ERR unknown command')\n"
    )
    t = vdevs(flash, "--locked")
    _wait(lambda: t.child_pid() is not None)
    child = t.child_pid()
    with Device(t.port, timeout=bound(STEP)) as dev:
        assert dev.line("PING") == "OK pong"
    r = mpremote(t.port, "exec", "print(1)", timeout=60)
    assert r.returncode != 0  # no REPL: mpremote fails cleanly
    assert "1" not in r.stdout.splitlines()
    time.sleep(0.2)
    assert t.child_pid() == child  # Ctrl-C bytes did not kill it
    with Device(t.port, timeout=bound(STEP)) as dev:
        # mpremote's bytes were lines to it: their ERR answers may still be on the way
        _sync(dev)
        assert dev.line("PING") == "OK pong"
        assert dev.line("HELLO") == "ERR unknown command"
        with pytest.raises(DeviceError, match="raw REPL.*locked token"):
            dev.eval("1", timeout=3)


def test_a_slow_token_s_stale_replies_never_cost_the_nonce(vdevs, tmp_path: Path) -> None:
    # A token slower than the transport's quiet gap still answers stale input (here a
    # line of junk) after our CHALLENGE went out. The station must skip that answer and
    # wait for its own, never send CHALLENGE twice: a second one would replace the
    # nonce the first reply carries, and the MAC over it would be refused ("bad mac").
    flash = tmp_path / "tok"
    flash.mkdir()
    (flash / "main.py").write_text(
        "import micropython, sys, time\n"
        "micropython.kbd_intr(-1)\n"
        "n = 0\n"
        "while True:\n"
        " l = sys.stdin.readline()\n"
        " if not l: break\n"
        " l = l.strip()\n"
        " if not l: continue\n"
        " time.sleep(0.4)\n"
        " if l[:5] == 'SYNC ': print('OK ' + l[5:])\n"
        " elif l == 'INFO': print('OK id=00000001 locked=1')\n"
        " elif l == 'CHALLENGE':\n"
        "  n += 1\n"
        "  print('OK %016x' % n)\n"
        " elif l == 'COUNT': print('OK count=%d' % n)\n"
        " else: print('ERR unknown command')\n"
    )
    t = vdevs(flash, "--locked")
    _wait(lambda: t.child_pid() is not None)
    with Device(t.port, timeout=bound(STEP)) as dev:
        _sync(dev)
        dev._ser.write(b"junk\n")  # a client's stale line: its ERR comes after our command
        nonce = ops.challenge(dev, "check")
        assert dev.line("COUNT") == "OK count=1"  # one CHALLENGE reached the token
        assert nonce == "%016x" % 1  # and the nonce is the one it holds
        dev._ser.write(b"junk\n")
        assert dev.line("INFO", want=lambda r: r.startswith("OK id=")).startswith("OK id=00000001")


def test_exit_is_a_reboot_and_status_66_a_hard_reset(vdevs, tmp_path: Path) -> None:
    flash = tmp_path / "tok"
    flash.mkdir()
    (flash / "main.py").write_text("open('/boots', 'a').write('x')\n")
    t = vdevs(flash)
    _wait(lambda: (flash / "boots").exists())
    assert (flash / "boots").read_text() == "x"
    with Device(t.port, timeout=bound(STEP)) as dev:
        dev.enter_raw()  # a soft reboot in raw mode: main.py does not run
        assert (flash / "boots").read_text() == "x"
        dev.exec("import sys\nsys.exit(0)", timeout=bound(STEP))  # ends the interpreter: raw reboot
    boots = json.loads((t.hw / "vdev.json").read_text())["boots"]
    with Device(t.port, timeout=bound(STEP)) as dev:
        assert dev.eval("1") == 1
        assert (flash / "boots").read_text() == "x"
        assert json.loads((t.hw / "vdev.json").read_text())["boots"] > boots
        dev.exec("import sys\nsys.exit(66)", timeout=bound(STEP))  # hard reset: main.py runs
    _wait(lambda: (flash / "boots").read_text() == "xx")


def test_device_errors_carry_no_data(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    secret = bytes.fromhex("3132333435363738393031323334353637383930")
    with Device(t.port, timeout=bound(STEP)) as dev:
        with pytest.raises(DeviceError) as e:
            dev.put(secret, "/no/such/dir/paytoken.cfg")
        msg = str(e.value)
        assert "paytoken.cfg" in msg and "ENOENT" in msg
        for form in (secret.hex(), "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA", secret.decode()):
            assert form not in msg
        with pytest.raises(DeviceError) as e:
            dev.exec(f"k = {secret!r}\nraise OSError(5)")
        assert secret.decode() not in str(e.value) and "OSError" in str(e.value)


def test_mpremote_reset_is_a_hard_reset_and_machine_has_rtc(vdevs, tmp_path: Path) -> None:
    # The unix port's machine module has neither reset() nor RTC; a board has both,
    # and `mpremote reset` calls machine.reset().
    flash = tmp_path / "tok"
    flash.mkdir()
    (flash / "main.py").write_text("open('/boots', 'a').write('x')\n")
    (flash / "board.py").write_text(
        "class _R:\n"
        "    def datetime(self, t=None):\n"
        "        return (2031, 5, 6, 1, 7, 8, 9, 0)\n"
        "def mcu_rtc():\n"
        "    return _R()\n"
    )
    t = vdevs(flash)
    _wait(lambda: (flash / "boots").exists())
    r = mpremote(t.port, "reset")
    assert r.returncode == 0, r.stderr
    _wait(lambda: (flash / "boots").read_text() == "xx")  # main.py ran again: a full boot
    r = mpremote(t.port, "exec", "import machine; print(machine.RTC().datetime()[:3])")
    assert r.stdout.strip() == "(2031, 5, 6)", r.stderr
    # everything else still comes from the real module; a missing name says so
    r = mpremote(t.port, "exec", "import machine; print(machine.idle is not None); machine.Pin")
    assert r.stdout.startswith("True")
    assert "no attribute 'Pin'" in r.stdout + r.stderr


def test_no_ctrl_c_window_before_main_py(vdevs, tmp_path: Path) -> None:
    # A frozen-boot guarantee: Ctrl-C stays off from power-up until the firmware's
    # main.py turns it on, so a Ctrl-C held down during boot cannot reach the REPL
    # of a locked token in the window before main.py's first statement.
    flash = tmp_path / "tok"
    flash.mkdir()
    (flash / "main.py").write_text(
        "import time\ntime.sleep_ms(1500)\nopen('/done', 'w').write('1')\n"
    )
    t = vdevs(flash)
    with serial.Serial(os.path.realpath(t.port), timeout=0.05) as s:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            s.write(b"\x03")
            time.sleep(0.02)
        _wait(lambda: (flash / "done").exists())
        out = _read_for(s, bound(STEP), until=b">>> ")
    assert (flash / "done").read_text() == "1"
    assert b"KeyboardInterrupt" not in out
    # after main.py returned, the REPL is there and takes Ctrl-C as usual
    r = mpremote(t.port, "exec", "print('ok')")
    assert r.stdout.strip() == "ok", r.stderr


def test_a_power_cut_while_booting_stays_a_cut(vdevs, tmp_path: Path) -> None:
    """Cut the power just as the interpreter (re)starts: the board stays off until the host
    powers it. End to end only: the narrow window (a cut in the last poll, <= 50 ms, before
    the board's first use, which used to write power.json "on") is pinned down without a
    supervisor in tests/chips/test_vhw.py::test_a_cut_while_the_board_starts_stays_a_cut."""
    import signal

    t = vdevs(tmp_path / "tok")
    assert mpremote(t.port, "eval", "1+1").stdout.strip() == "2"
    link = Path(t.port)
    assert not [p.name for p in link.parent.iterdir() if p.name.endswith(".new")]  # no link temp left
    for _ in range(3):
        _wait(lambda: t.child_pid() is not None)
        old = t.child_pid()
        os.kill(t.proc.pid, signal.SIGUSR1)  # a hard reset: a new interpreter boots
        _wait(lambda old=old: t.child_pid() not in (None, old))
        vhw.power_off(t.hw)  # while it boots
        _wait(lambda: t.child_pid() is None)
        time.sleep(0.5)  # longer than the supervisor's polls and a boot
        assert not vhw.is_powered(t.hw) and t.child_pid() is None
        vhw.power_on(t.hw)
    with Device(t.port, timeout=bound(STEP)) as dev:
        assert dev.eval("'alive'") == "alive"
