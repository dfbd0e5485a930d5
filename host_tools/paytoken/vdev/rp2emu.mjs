// rp2emu.mjs: one emulated Raspberry Pi Pico (RP2040, rp2040js 1.4.1) running a MicroPython
// .uf2, for paytoken's virtual tokens (paytoken/vdev/rp2.py starts it; not run by hand).
//
//   node rp2emu.mjs --config JSON
//
// JSON: {"modules": dir holding node_modules/rp2040js, "bootrom": file, "uf2": file,
//        "flash": image file (created, kept: the token's flash), "i2c": [id, sda, scl],
//        "addrs": [7-bit addresses the chip models answer], "pins": {gpio: level},
//        "fastIdle": bool}
//
// File descriptors (set up by the Python side):
//   0 / 1  the USB CDC serial, raw bytes (host -> device / device -> host); 2 logs
//   3      control, lines from Python: "pin N 0|1|-" (drive an input from outside or let
//          it go), "press N ms [L]" (hold pin N at level L, default 0, for ms emulated
//          milliseconds), "stats"
//   4      events and I2C requests to Python, lines:
//            "W addr hex T"  a finished write transaction (hex data); T is "t wire idle":
//                            emulated ns since power-on, of them on the I2C wire, idle
//            "R addr first"  read one byte (first: 1 on a transaction's first byte);
//                            Python answers on fd 5 with one line, the byte in decimal
//            "B n reason T"  the chip booted (n-th boot of this process)
//            "P T"           a press began
//            "H level T"     the power latch's hold pin (cfg.hold) driven to level 0 or 1
//            "S {json}"      statistics (answer to "stats"; also at exit)
//   5      I2C read replies from Python (read synchronously: the chip waits for its chip)
//
// The chip models (SSD1306, DS3231, PCF8563) live in Python (firmware/sim): this runner
// only moves bus transactions. What rp2040js lacks and how it is made up for here
// (numbers as in the materials' README, ../shared/micropython-rp2):
//  (1) boot at 0x10000000 (boot2), flash loaded after loadBootrom();
//  (2) the ROM's flash_range_erase/program become BKPT thunks served here, written
//      through to the flash image file at once (a kill is a power cut: what was written
//      stays, as on NOR flash);
//  (3) USB CDC OUT transfers are held until the host has data;
//  (4) CR LF once the CDC is configured, so the banner leaves TinyUSB;
//  (5) host bytes are held until the first ">>> " or 150 ms emulated after the CDC is
//      configured (main.py may never give a prompt): a Ctrl-C into _boot.py loses the FS;
//  (6) idle time passes no faster than wall time unless fastIdle;
//  (7) I2C.scan() and zero-length writes bit-bang the pins: an open-drain bus model on
//      the board's SDA/SCL feeds the same chip models;
//  (8) an address NACK raises TX_EMPTY (else ETIMEDOUT instead of EIO);
//  (9) UART TX interrupt raised only when a byte is written;
//  (10) a watchdog reset reboots a fresh chip on the same flash, keeping the watchdog's
//       reason and scratch registers;
//  (11) GPIO inputs follow the pin's own output and pulls unless driven from outside
//       (the button, VBUS sense);
//  plus bus timing: each I2C phase completes after its bit times at the programmed SCL
//  rate, so emulated time includes the wire (rp2040js completes at once).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(process.argv[process.argv.indexOf('--config') + 1]);
const rp = await import(pathToFileURL(path.join(cfg.modules, 'node_modules/rp2040js/dist/esm/index.js')).href);
const { RP2040, USBCDC, ConsoleLogger, LogLevel, GPIOPinState, I2CMode } = rp;
const log = (s) => process.stderr.write(`[rp2emu] ${s}\n`);

const EV = 4, REPLY = 5;
function emit(line) {
  const b = Buffer.from(line + '\n');
  for (let off = 0; off < b.length;) {
    try { off += fs.writeSync(EV, b, off); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
  }
}
const replyBuf = Buffer.alloc(64);
let replyTail = '';
function readReply() {
  for (;;) {
    const nl = replyTail.indexOf('\n');
    if (nl >= 0) { const l = replyTail.slice(0, nl); replyTail = replyTail.slice(nl + 1); return l; }
    let n = 0;
    try { n = fs.readSync(REPLY, replyBuf, 0, replyBuf.length, null); } catch (e) { if (e.code === 'EAGAIN') continue; throw e; }
    if (n === 0) { log('chip models gone'); process.exit(4); }
    replyTail += replyBuf.toString('latin1', 0, n);
  }
}

// ---------- flash: the image file is the chip's flash ----------
const FLASH_SIZE = 2 * 1024 * 1024; // the Pico's W25Q16 (rp2040js maps 16 MiB)
const flash = new Uint8Array(FLASH_SIZE).fill(0xff);
if (fs.existsSync(cfg.flash)) {
  const img = fs.readFileSync(cfg.flash);
  flash.set(img.subarray(0, Math.min(img.length, FLASH_SIZE)), 0);
}
{ // the UF2 goes over it, as a drag-and-drop flashing does: the filesystem stays
  const buf = fs.readFileSync(cfg.uf2);
  for (let off = 0; off + 512 <= buf.length; off += 512) {
    if (buf.readUInt32LE(off) !== 0x0a324655 || buf.readUInt32LE(off + 4) !== 0x9e5d5157 ||
        buf.readUInt32LE(off + 508) !== 0x0ab16f30) { log(`${cfg.uf2}: not a UF2 file (block at ${off})`); process.exit(2); }
    if (buf.readUInt32LE(off + 8) & 1) continue; // "not main flash"
    const addr = buf.readUInt32LE(off + 12), size = buf.readUInt32LE(off + 16);
    if (addr < 0x10000000 || addr + size > 0x10000000 + FLASH_SIZE || size > 476) {
      log(`${cfg.uf2}: block for 0x${addr.toString(16)} outside the 2 MiB flash`); process.exit(2);
    }
    flash.set(buf.subarray(off + 32, off + 32 + size), addr - 0x10000000);
  }
}
const flashFd = fs.openSync(cfg.flash, fs.existsSync(cfg.flash) ? 'r+' : 'w+');
fs.writeSync(flashFd, flash, 0, FLASH_SIZE, 0);
function flashWrite(start, end) { fs.writeSync(flashFd, flash, start, end - start, start); }

// ---------- outside levels on input pins (button, VBUS) ----------
const driven = new Map(); // gpio -> bool
for (const [k, v] of Object.entries(cfg.pins || {})) driven.set(Number(k), !!v);
const [I2C_ID, SDA_PIN, SCL_PIN] = cfg.i2c;
const addrs = new Set(cfg.addrs);

// ---------- host side of the serial link ----------
let hostQueue = [], hostQueued = 0;
function takeHost(size) {
  const out = new Uint8Array(Math.min(size, hostQueued));
  let n = 0;
  while (n < out.length) {
    const b = hostQueue[0], k = Math.min(b.length, out.length - n);
    out.set(b.subarray(0, k), n); n += k;
    if (k === b.length) hostQueue.shift(); else hostQueue[0] = b.subarray(k);
  }
  hostQueued -= n;
  return out;
}
let board = null;
process.stdin.on('data', (d) => { hostQueue.push(new Uint8Array(d)); hostQueued += d.length; if (board) board.flushHost(); kick(); });
process.stdin.on('end', () => shutdown(0));

// ---------- statistics (over all boots of this process) ----------
let boots = 0, cycles = 0, idleNanos = 0, wireNanos = 0, nanosBefore = 0;
const emuNanos = () => nanosBefore + (board ? board.clock.nanos : 0);
const stamp = () => `${Math.round(emuNanos())} ${Math.round(wireNanos)} ${Math.round(idleNanos)}`;

function createBoard(reason) {
  const gen = ++boots;
  const mcu = new RP2040();
  mcu.logger = new ConsoleLogger(LogLevel.Error);
  mcu.loadBootrom(cfg.bootromWords); // resets the core and fills flash with 0xff (1)
  mcu.flash.set(flash, 0);
  const { core, clock } = mcu;
  const self = { mcu, core, clock, dead: false, flushHost: () => {} };

  // (2) flash program/erase through BKPT thunks in place of the ROM functions
  const rom8 = new Uint8Array(mcu.bootrom.buffer);
  const romU16 = (a) => rom8[a] | (rom8[a + 1] << 8);
  const romFuncs = {};
  for (let p = romU16(0x14); romU16(p); p += 4) {
    const code = romU16(p);
    romFuncs[String.fromCharCode(code & 0xff, code >> 8)] = romU16(p + 2);
  }
  const BK_ERASE = 0xe0, BK_PROGRAM = 0xe1;
  for (const [fn, bk] of [['RE', BK_ERASE], ['RP', BK_PROGRAM]]) {
    const a = romFuncs[fn] & ~1;
    rom8[a] = bk; rom8[a + 1] = 0xbe; rom8[a + 2] = 0x70; rom8[a + 3] = 0x47; // BKPT #bk; BX LR
  }
  mcu.onBreak = (code) => {
    const r = core.registers;
    if (code === BK_ERASE) {
      const start = r[0] & ~0xfff, end = Math.min((r[0] + r[1] + 0xfff) & ~0xfff, FLASH_SIZE);
      if (start >= end) return;
      mcu.flash.fill(0xff, start, end); flash.fill(0xff, start, end); flashWrite(start, end);
    } else if (code === BK_PROGRAM) { // NOR: programming only clears bits
      const addr = r[0], data = r[1], n = Math.min(r[2], FLASH_SIZE - addr);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) { const v = mcu.flash[addr + i] & mcu.readUint8(data + i); mcu.flash[addr + i] = v; flash[addr + i] = v; }
      flashWrite(addr, addr + n);
    } else {
      log(`BKPT #${code} at 0x${(core.PC - 2).toString(16)}: the chip halts`); shutdown(3);
    }
  };

  // (10) watchdog reset
  const wd = mcu.peripherals[0x40058];
  wd.onWatchdogTrigger = () => {
    wd.alarm.enable = false; wd.timer.enable = false; // else it re-fires inside this tick
    if (board !== self) return;
    self.dead = true;
    hostQueue = []; hostQueued = 0; // the host loses the port on a reset
    nanosBefore += clock.nanos;
    board = createBoard('watchdog');
    board.mcu.peripherals[0x40058].reason = wd.reason;
    board.mcu.peripherals[0x40058].scratchData.set(wd.scratchData);
  };

  // USB CDC: (3) (4) (5)
  const cdc = new USBCDC(mcu.usbCtrl), usb = mcu.usbCtrl;
  let pendingOut = null, gateOpen = false, kick = false, tail = '', configuredAt = -1;
  const origEnabled = usb.onUSBEnabled;
  usb.onUSBEnabled = () => {
    cdc.initialized = false; cdc.descriptorsSize = null; cdc.descriptors = [];
    cdc.inEndpoint = -1; cdc.outEndpoint = -1; pendingOut = null; gateOpen = false; configuredAt = -1;
    origEnabled();
  };
  const gateAlarm = clock.createAlarm(() => { if (board === self && configuredAt >= 0) { gateOpen = true; flushHost(); } });
  function flushHost() {
    if (!pendingOut || cdc.outEndpoint < 0) return;
    if (kick) {
      kick = false;
      const { endpoint, size } = pendingOut; pendingOut = null;
      usb.endpointReadDone(endpoint, new Uint8Array([13, 10]).subarray(0, Math.min(size, 2)));
    } else if (gateOpen && hostQueued > 0) {
      const { endpoint, size } = pendingOut; pendingOut = null;
      usb.endpointReadDone(endpoint, takeHost(size));
    }
  }
  self.flushHost = flushHost;
  usb.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) return;
    pendingOut = { endpoint, size }; flushHost();
  };
  cdc.onDeviceConnected = () => {
    configuredAt = clock.nanos; kick = true;
    gateAlarm.schedule(150e6);
    flushHost();
  };
  cdc.onSerialData = (buf) => {
    if (board !== self) return;
    process.stdout.write(Buffer.from(buf));
    if (!gateOpen) {
      tail = (tail + Buffer.from(buf).toString('latin1')).slice(-8);
      if (tail.includes('>>> ')) { gateOpen = true; gateAlarm.cancel(); flushHost(); }
    }
  };

  // I2C transactions to the chip models (in Python); writes are sent whole at the stop
  let txAddr = -1, txData = [], reading = false, firstRead = false;
  function endWrite() {
    if (txAddr >= 0 && !reading) emit(`W ${txAddr} ${Buffer.from(txData).toString('hex') || '-'} ${stamp()}`);
    txAddr = -1; txData = []; reading = false;
  }
  function readByte(addr) {
    emit(`R ${addr} ${firstRead ? 1 : 0}`); firstRead = false;
    return Number(readReply()) & 0xff;
  }
  { // the I2C peripheral; each phase completes after its bit times on the wire
    const i2c = mcu.i2c[I2C_ID];
    const bitNanos = () => {
      const fast = ((i2c.control >> 1) & 3) !== 1;
      const n = fast ? i2c.fsClockHighPeriod + i2c.fsClockLowPeriod : i2c.ssClockHighPeriod + i2c.ssClockLowPeriod;
      return Math.max(n, 8) * 1e9 / mcu.clkSys;
    };
    let pending = null;
    const alarm = clock.createAlarm(() => { const f = pending; pending = null; if (f) f(); });
    const after = (bits, f) => { const t = bits * bitNanos(); wireNanos += t; pending = f; alarm.schedule(t); };
    i2c.onStart = () => after(1, () => i2c.completeStart());
    i2c.onConnect = (addr, mode) => {
      endWrite();
      const ack = addrs.has(addr);
      txAddr = ack ? addr : -1; reading = mode === I2CMode.Read; firstRead = true;
      after(9, () => {
        i2c.completeConnect(ack);
        if (!ack) i2c.setInterrupts(1 << 4); // (8) R_TX_EMPTY after a NACK
      });
    };
    i2c.onWriteByte = (v) => { if (txAddr >= 0) txData.push(v); after(9, () => i2c.completeWrite(txAddr >= 0)); };
    i2c.onReadByte = () => { const v = txAddr >= 0 ? readByte(txAddr) : 0xff; after(9, () => i2c.completeRead(v)); };
    i2c.onStop = () => { endWrite(); after(1, () => i2c.completeStop()); };
  }

  // (11) GPIO: outside levels, else loopback of the pin's own output and pulls
  const bus = new Set([SDA_PIN, SCL_PIN]);
  const level = (pin) => {
    if (driven.has(pin.index)) return driven.get(pin.index);
    const st = pin.value;
    if (st === GPIOPinState.High || st === GPIOPinState.InputPullUp) return true;
    if (st === GPIOPinState.Low || st === GPIOPinState.InputPullDown) return false;
    return null;
  };
  self.refreshPin = (n) => { const p = mcu.gpio[n]; if (!p || bus.has(n)) return; const v = level(p); if (v !== null) p.setInputValue(v); };
  for (const pin of mcu.gpio) {
    if (bus.has(pin.index)) continue;
    pin.addListener(() => { const v = level(pin); if (v !== null) pin.setInputValue(v); });
    const v = level(pin); if (v !== null) pin.setInputValue(v);
  }
  mcu.adc.channelValues[4] = 876; // temperature sensor: 27 C
  if (cfg.hold != null) { // a power latch's hold pin: its output level, to Python
    const hp = mcu.gpio[cfg.hold];
    let held = -1;
    hp.addListener(() => {
      const v = hp.value === GPIOPinState.High ? 1 : hp.value === GPIOPinState.Low ? 0 : -1;
      if (v >= 0 && v !== held) { held = v; emit(`H ${v} ${stamp()}`); }
    });
  }

  // (9) UART TX interrupt
  for (const u of mcu.uart) {
    u.checkInterrupts = function () { this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask)); };
    const base = u.writeUint32.bind(u);
    u.writeUint32 = function (offset, value) { base(offset, value); if (offset === 0) { this.interruptStatus |= 1 << 5; this.checkInterrupts(); } };
  }

  // (7) open-drain bit-banged bus on SDA/SCL (I2C.scan, zero-length writes, SoftI2C)
  {
    const SDA = mcu.gpio[SDA_PIN], SCL = mcu.gpio[SCL_PIN];
    let tgtSda = false, scl = true, sda = true;
    let st = 'idle', bits = 0, byte = 0, dev = -1, txByte = 0, acking = false, mAck = false;
    const low = (p) => p.value === GPIOPinState.Low;
    const nextRead = () => { txByte = readByte(dev); bits = 0; tgtSda = !(txByte & 0x80); };
    const update = () => {
      const oScl = scl, oSda = sda;
      scl = !low(SCL); sda = !(low(SDA) || tgtSda);
      if (oScl && scl && oSda && !sda) { endWrite(); st = 'addr'; bits = 0; byte = 0; dev = -1; tgtSda = false; acking = false; }
      else if (oScl && scl && !oSda && sda) { endWrite(); st = 'idle'; tgtSda = false; dev = -1; acking = false; }
      else if (!oScl && scl) {
        if (acking) { /* our ACK clock */ }
        else if (st === 'addr' || st === 'wr') { byte = (byte << 1) | (sda ? 1 : 0); bits++; }
        else if (st === 'rdack') mAck = !sda;
      } else if (oScl && !scl) {
        if (acking) { acking = false; tgtSda = false; if (st === 'rd') nextRead(); }
        else if ((st === 'addr' || st === 'wr') && bits === 8) {
          if (st === 'addr') {
            const a = byte >> 1, rw = byte & 1;
            if (addrs.has(a)) {
              dev = a; acking = true; tgtSda = true; st = rw ? 'rd' : 'wr';
              txAddr = a; txData = []; reading = !!rw; firstRead = true;
            } else st = 'nack';
          } else { txData.push(byte); acking = true; tgtSda = true; }
          bits = 0; byte = 0;
        } else if (st === 'rd') {
          bits++;
          if (bits < 8) tgtSda = !((txByte << bits) & 0x80); else { tgtSda = false; st = 'rdack'; }
        } else if (st === 'rdack') { if (mAck) { st = 'rd'; nextRead(); } else st = 'nack'; }
      }
      sda = !(low(SDA) || tgtSda);
      SDA.setInputValue(sda); SCL.setInputValue(scl);
    };
    SDA.addListener(update); SCL.addListener(update);
    SDA.setInputValue(true); SCL.setInputValue(true);
  }

  core.PC = 0x10000000; // (1)
  emit(`B ${gen} ${reason} ${Math.round(nanosBefore)} ${Math.round(wireNanos)} ${Math.round(idleNanos)}`);
  return self;
}

// ---------- control from Python (fd 3) ----------
{
  let buf = '';
  fs.createReadStream(null, { fd: 3 }).on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const [cmd, a, b, c] = buf.slice(0, nl).trim().split(' ');
      buf = buf.slice(nl + 1);
      if (cmd === 'press') { // hold the pin low for b emulated ms (the board's button)
        const n = Number(a);
        driven.set(n, c === '1');
        if (board) {
          board.refreshPin(n);
          emit(`P ${stamp()}`);
          const bd = board, al = bd.clock.createAlarm(() => { driven.delete(n); if (board === bd) bd.refreshPin(n); });
          al.schedule(Number(b) * 1e6);
        }
      } else if (cmd === 'pin') {
        if (b === '-') driven.delete(Number(a)); else driven.set(Number(a), b === '1');
        if (board) board.refreshPin(Number(a));
      } else if (cmd === 'stats') emit('S ' + JSON.stringify(stats()));
    }
    kick();
  }).on('end', () => shutdown(0));
}

// ---------- run loop (6) ----------
let lastWall = performance.now(), stopped = false, idleTimer = null;
const IDLE_MS = 20;
function runBatch() {
  if (stopped) return;
  const b = board, { core, clock, mcu } = b;
  const t0 = performance.now();
  const allow = clock.nanos + Math.min(t0 - lastWall, 50) * 1e6;
  lastWall = t0;
  let idle = false;
  outer: for (;;) {
    const cycleNanos = 1e9 / mcu.clkSys;
    for (let i = 0; i < 50000; i++) {
      if (core.waiting) {
        let n = clock.nanosToNextAlarm;
        if (n <= 0) { idle = true; break outer; }
        if (!cfg.fastIdle && clock.nanos + n > allow) {
          n = allow - clock.nanos;
          if (n > 0) { clock.tick(n); idleNanos += n; }
          idle = true; break outer;
        }
        clock.tick(n); idleNanos += n;
      } else {
        const c = core.executeInstruction();
        cycles += c;
        clock.tick(c * cycleNanos);
      }
      if (b.dead) break outer;
    }
    if (performance.now() - t0 > 20) break;
  }
  if (idle) {
    // Asleep (WFI/WFE): wait for the next alarm in wall time, at most IDLE_MS, instead of
    // a 1 ms poll (a thousand wake-ups a second of an idle chip); host bytes and the
    // supervisor's commands wake the loop at once (kick).
    const n = clock.nanosToNextAlarm;
    const ms = cfg.fastIdle || n <= 0 ? IDLE_MS : Math.max(1, Math.min(IDLE_MS, Math.floor(n / 1e6)));
    idleTimer = setTimeout(() => { idleTimer = null; runBatch(); }, ms);
  } else setImmediate(runBatch);
}
function kick() {
  if (idleTimer === null) return;
  clearTimeout(idleTimer);
  idleTimer = null;
  setImmediate(runBatch);
}
function stats() {
  return { boots, emu_ns: Math.round(emuNanos()), cycles, idle_ns: Math.round(idleNanos),
           i2c_wire_ns: Math.round(wireNanos), clk_sys: board ? board.mcu.clkSys : 0,
           wall_s: performance.now() / 1000 };
}
let exiting = false;
function shutdown(code) {
  if (exiting) return; exiting = true; stopped = true;
  try { emit('S ' + JSON.stringify(stats())); } catch { /* Python went first */ }
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

cfg.bootromWords = new Uint32Array(new Uint8Array(fs.readFileSync(cfg.bootrom)).buffer);
board = createBoard('power-on');
runBatch();
