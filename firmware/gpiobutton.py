"""A push button from a GPIO to GND (active low, pulled up), for the real boards. Usage: b = Button(15, False); b.pressed()"""


class Button:
    # A falling-edge IRQ latches each press for pressed(); `edge` starts as given
    # (an ESP32 woken from deep sleep by the button counts that as the first press).
    def __init__(self, pin, edge):
        from machine import Pin

        self.pin = Pin(pin, Pin.IN, Pin.PULL_UP)
        self.edge = edge
        self.up = True
        self.pin.irq(handler=self._irq, trigger=Pin.IRQ_FALLING)

    def _irq(self, pin):
        self.edge = True

    def poll(self):
        # After a lightsleep slice: clk_sys was gated, so the edge may have gone
        # unlatched; a level that went low since the last look is a press too.
        up = self.pin.value() == 1
        if self.up and not up:
            self.edge = True
        self.up = up
        return self.edge

    def value(self):
        return 0 if self.pin.value() else 1

    def pressed(self):
        e = self.edge
        self.edge = False
        return e
