# The I2C bus model: the machine.I2C calls the drivers use, routed to device
# models by 7-bit address. Absent address -> OSError(19) (ENODEV), like a NAK.
# Counts bytes on the wire per transaction: each address byte (a repeated
# start sends it again) plus the data bytes.
from . import store

_ENODEV = 19


class I2CBus:
    def __init__(self, folder=None, freq=400000):
        self.folder = folder
        self.freq = freq
        self.devices = {}
        self._reg = bytearray(1)
        c = store.load(folder, "i2c.json", None) if folder else None
        # Cumulative over power cycles when a hardware folder backs the bus.
        self.bytes = c["bytes"] if c else 0
        self.transactions = c["transactions"] if c else 0
        self._saved = self.bytes

    def attach(self, addr, dev):
        self.devices[addr] = dev

    def detach(self, addr):
        self.devices.pop(addr, None)

    def _dev(self, addr, n):
        # One transaction: the address byte and n data bytes go on the wire
        # (only the address byte when nobody acknowledges it).
        self.transactions += 1
        d = self.devices.get(addr)
        if d is None:
            self.bytes += 1
            raise OSError(_ENODEV)
        self.bytes += 1 + n
        return d

    def _done(self, persisted):
        if persisted:
            self.flush()

    # machine.I2C API
    def scan(self):
        found = []
        for a in range(0x08, 0x78):
            self.transactions += 1
            self.bytes += 1
            if a in self.devices:
                found.append(a)
        return found

    def writeto(self, addr, buf, stop=True):
        d = self._dev(addr, len(buf))
        self._done(d.xfer_write((buf,)))
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        n = 0
        for b in vector:
            n += len(b)
        d = self._dev(addr, n)
        self._done(d.xfer_write(vector))
        return n

    def readfrom_into(self, addr, buf, stop=True):
        self._dev(addr, len(buf)).xfer_read(buf)

    def readfrom(self, addr, n, stop=True):
        b = bytearray(n)
        self.readfrom_into(addr, b)
        return bytes(b)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        # Write the register pointer, then a repeated start and the read:
        # two address bytes, one pointer byte, len(buf) data bytes.
        d = self._dev(addr, 1)
        self._reg[0] = memaddr
        d.xfer_write((self._reg,))
        self.bytes += 1 + len(buf)
        d.xfer_read(buf)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        b = bytearray(n)
        self.readfrom_mem_into(addr, memaddr, b)
        return bytes(b)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        d = self._dev(addr, 1 + len(buf))
        self._reg[0] = memaddr
        self._done(d.xfer_write((self._reg, buf)))

    # counters
    def counters(self):
        return {"bytes": self.bytes, "transactions": self.transactions}

    def flush(self):
        # Persist the counters to i2c.json (on display changes, sleep and exit).
        if self.folder and self.bytes != self._saved:
            store.save(self.folder, "i2c.json", self.counters())
            self._saved = self.bytes
