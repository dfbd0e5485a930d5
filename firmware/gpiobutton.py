"""A push button on a GPIO, for the real boards: to GND (active low, pulled up), or high while pressed. Usage: b = Button(15, False); b.pressed()"""


class Button:
    # An IRQ on the press edge latches each press for pressed(); `edge` starts as given
    # (an ESP32 woken from deep sleep by the button counts that as the first press).
    # high: the pin reads high while pressed (pulled down; a power-latch board senses
    # its button from the cell, boards/pico-latch.py).
    def __init__(self, pin, edge, high=False):
        from machine import Pin

        self.pin = Pin(pin, Pin.IN, Pin.PULL_DOWN if high else Pin.PULL_UP)
        self.idle = 0 if high else 1  # the level with the button up
        self.edge = edge
        self.up = True
        self.pin.irq(handler=self._irq, trigger=Pin.IRQ_RISING if high else Pin.IRQ_FALLING)

    def _irq(self, pin):
        self.edge = True

    def poll(self):
        # After a lightsleep slice: clk_sys was gated, so the edge may have gone
        # unlatched; a level that went low since the last look is a press too.
        up = self.pin.value() == self.idle
        if self.up and not up:
            self.edge = True
        self.up = up
        return self.edge

    def value(self):
        return 0 if self.pin.value() == self.idle else 1

    def pressed(self):
        e = self.edge
        self.edge = False
        return e
