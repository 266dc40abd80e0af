#!/usr/bin/env python3
"""Draws addon/icon.png (128x128) and addon/logo.png (250x100).

The mark: two cluster nodes joined by a link, and the third vote (the
QNetd server) above them, linked to both. The logo adds the word "qnetd"
in a stroke font drawn from lines and arcs. Pure Python (zlib only), so it
needs nothing installed; the output is deterministic, so rerunning it on an
unchanged script leaves the committed PNGs byte for byte the same.

    scripts/draw-icons.py [OUTPUT_DIR]     (default: addon/)
"""

import math
import os
import struct
import sys
import zlib

SS = 4  # supersampling per axis

BLUE = (0x1F, 0x6F, 0xB5)
GREEN = (0x2E, 0xA0, 0x5A)
INK = (0x22, 0x2B, 0x36)
WHITE = (0xFF, 0xFF, 0xFF)


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    L = dx * dx + dy * dy
    t = 0.0 if L == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / L))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def capsule(ax, ay, bx, by, r):
    box = (min(ax, bx) - r, min(ay, by) - r, max(ax, bx) + r, max(ay, by) + r)
    return box, lambda x, y: seg_dist(x, y, ax, ay, bx, by) <= r


def disc(cx, cy, r):
    return (cx - r, cy - r, cx + r, cy + r), lambda x, y: math.hypot(x - cx, y - cy) <= r


def ring(cx, cy, r, w, start=0.0, end=360.0):
    """An arc of width w on radius r, from start to end degrees
    (0 = east, counter-clockwise, y pointing down as on screen)."""
    def inside(x, y):
        d = math.hypot(x - cx, y - cy)
        if abs(d - r) > w / 2:
            return False
        a = math.degrees(math.atan2(cy - y, x - cx)) % 360
        return (a - start) % 360 <= (end - start) % 360 or end - start >= 360
    R = r + w
    return (cx - R, cy - R, cx + R, cy + R), inside


class Canvas:
    def __init__(self, w, h, bg=None):
        self.w, self.h = w, h
        self.px = [[(0.0, 0.0, 0.0, 0.0)] * w for _ in range(h)]
        if bg:
            self.fill(bg, ((0, 0, w, h), lambda x, y: True))

    def fill(self, color, shape):
        (x0, y0, x1, y1), inside = shape
        n = SS * SS
        for py in range(max(0, int(y0) - 1), min(self.h, int(y1) + 2)):
            for px in range(max(0, int(x0) - 1), min(self.w, int(x1) + 2)):
                hits = sum(
                    inside(px + (i + 0.5) / SS, py + (j + 0.5) / SS)
                    for i in range(SS)
                    for j in range(SS)
                )
                if hits:
                    self.blend(px, py, color, hits / n)

    def blend(self, x, y, color, a):
        r, g, b, da = self.px[y][x]
        oa = a + da * (1 - a)
        mix = lambda c, d: (c * a + d * da * (1 - a)) / oa
        self.px[y][x] = (mix(color[0], r), mix(color[1], g), mix(color[2], b), oa)

    def png(self, path):
        raw = b"".join(
            b"\0" + bytes(
                v for (r, g, b, a) in row
                for v in (round(r), round(g), round(b), round(a * 255))
            )
            for row in self.px
        )

        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 6, 0, 0, 0)))
            f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
            f.write(chunk(b"IEND", b""))


def rounded_rect(x0, y0, x1, y1, r):
    def inside(x, y):
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return math.hypot(x - cx, y - cy) <= r
    return (x0, y0, x1, y1), inside


def mark(c, ox, oy, s):
    """The mark in a square of side s at (ox, oy)."""
    P = lambda fx, fy: (ox + fx * s, oy + fy * s)
    top, left, right = P(0.5, 0.27), P(0.24, 0.72), P(0.76, 0.72)
    w = 0.045 * s
    for a, b in ((left, right), (left, top), (right, top)):
        c.fill(WHITE, capsule(*a, *b, w))
    for n in (left, right):
        c.fill(WHITE, disc(*n, 0.13 * s))
        c.fill(BLUE, disc(*n, 0.09 * s))
    c.fill(WHITE, disc(*top, 0.15 * s))
    c.fill(GREEN, disc(*top, 0.105 * s))


def word_qnetd(c, ox, oy, h):
    """Lower-case "qnetd", x-height h, baseline at oy + h."""
    r, w = h / 2, h * 0.16
    x = ox
    # q: bowl + descender on the right
    c.fill(INK, ring(x + r, oy + r, r - w / 2, w))
    c.fill(INK, capsule(x + 2 * r - w / 2, oy + w / 2, x + 2 * r - w / 2, oy + h * 1.45, w / 2))
    x += 2 * r + h * 0.22
    # n: stem + arch + stem
    c.fill(INK, capsule(x + w / 2, oy + w / 2, x + w / 2, oy + h - w / 2, w / 2))
    c.fill(INK, ring(x + r, oy + r, r - w / 2, w, 0, 180))
    c.fill(INK, capsule(x + 2 * r - w / 2, oy + r, x + 2 * r - w / 2, oy + h - w / 2, w / 2))
    x += 2 * r + h * 0.22
    # e: ring open at the lower right, and the bar
    c.fill(INK, ring(x + r, oy + r, r - w / 2, w, 0, 320))
    c.fill(INK, capsule(x + w / 2, oy + r, x + 2 * r - w / 2, oy + r, w / 2))
    x += 2 * r + h * 0.2
    # t: stem + cross bar
    c.fill(INK, capsule(x + h * 0.35, oy - h * 0.35, x + h * 0.35, oy + h - w / 2, w / 2))
    c.fill(INK, capsule(x + w / 2, oy + w / 2, x + h * 0.7, oy + w / 2, w / 2))
    x += h * 0.7 + h * 0.2
    # d: bowl + ascender on the right
    c.fill(INK, ring(x + r, oy + r, r - w / 2, w))
    c.fill(INK, capsule(x + 2 * r - w / 2, oy - h * 0.45, x + 2 * r - w / 2, oy + h - w / 2, w / 2))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "addon")
    icon = Canvas(128, 128)
    icon.fill(BLUE, rounded_rect(4, 4, 124, 124, 22))
    mark(icon, 4, 4, 120)
    icon.png(os.path.join(out, "icon.png"))

    logo = Canvas(250, 100)
    logo.fill(BLUE, rounded_rect(6, 6, 94, 94, 16))
    mark(logo, 6, 6, 88)
    word_qnetd(logo, 108, 40, 24)
    logo.png(os.path.join(out, "logo.png"))


if __name__ == "__main__":
    main()
