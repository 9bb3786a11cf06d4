#!/usr/bin/env python3
"""Renders a terminal screen captured with `tmux capture-pane -e -p` (text with SGR colour escapes) to a PNG,
cell by cell in DejaVu Sans Mono, with the xterm palette. Usage: ansi2png.py CAPTURE.txt OUT.png [COLS ROWS]"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 15
BASE16 = [
    (0x1d, 0x1f, 0x21), (0xcc, 0x34, 0x2b), (0x19, 0x88, 0x44), (0xc8, 0x9b, 0x1e),
    (0x39, 0x71, 0xed), (0xa3, 0x6a, 0xc7), (0x2a, 0x9d, 0xa8), (0xc5, 0xc8, 0xc6),
    (0x66, 0x66, 0x66), (0xf1, 0x4c, 0x4c), (0x23, 0xd1, 0x8b), (0xf5, 0xf5, 0x43),
    (0x3b, 0x8e, 0xea), (0xd6, 0x70, 0xd6), (0x29, 0xb8, 0xdb), (0xff, 0xff, 0xff),
]
DEFAULT_FG = (0xd0, 0xd0, 0xd0)
# (up, down, left, right) arms of the box-drawing characters ratatui uses for frames.
BOX = {
    "─": (0, 0, 1, 1), "│": (1, 1, 0, 0), "┌": (0, 1, 0, 1), "┐": (0, 1, 1, 0), "└": (1, 0, 0, 1), "┘": (1, 0, 1, 0),
    "├": (1, 1, 0, 1), "┤": (1, 1, 1, 0), "┬": (0, 1, 1, 1), "┴": (1, 0, 1, 1), "┼": (1, 1, 1, 1),
    "╭": (0, 1, 0, 1), "╮": (0, 1, 1, 0), "╰": (1, 0, 0, 1), "╯": (1, 0, 1, 0),
}
DEFAULT_BG = (0x12, 0x14, 0x16)


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return (v, v, v)


class Pen:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = self.dim = self.underline = self.reverse = False

    def apply(self, params):
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = BASE16[c - 30]
            elif 90 <= c <= 97:
                self.fg = BASE16[c - 90 + 8]
            elif 40 <= c <= 47:
                self.bg = BASE16[c - 40]
            elif 100 <= c <= 107:
                self.bg = BASE16[c - 100 + 8]
            elif c == 39:
                self.fg = None
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    col = xterm256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    col = tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    col = None
                if c == 38:
                    self.fg = col
                else:
                    self.bg = col
            i += 1

    def colours(self):
        fg = self.fg or DEFAULT_FG
        bg = self.bg or DEFAULT_BG
        if self.reverse:
            fg, bg = bg, fg
        if self.dim:
            fg = tuple((a + b) // 2 for a, b in zip(fg, bg))
        return fg, bg


def main():
    src, out = sys.argv[1], sys.argv[2]
    text = open(src, encoding="utf-8", errors="replace").read().rstrip("\n").split("\n")
    cols = int(sys.argv[3]) if len(sys.argv) > 3 else 120
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else len(text)
    font = ImageFont.truetype(FONT, SIZE)
    bold = ImageFont.truetype(FONT_BOLD, SIZE)
    cw = int(round(font.getlength("M")))
    ch = SIZE + 4
    pad = 10
    img = Image.new("RGB", (cols * cw + 2 * pad, rows * ch + 2 * pad), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    pen = Pen()
    sgr = re.compile(r"\x1b\[([0-9;]*)m")
    for y, line in enumerate(text[:rows]):
        x = 0
        pos = 0
        while pos < len(line) and x < cols:
            m = sgr.match(line, pos)
            if m:
                pen.apply(m.group(1))
                pos = m.end()
                continue
            if line[pos] == "\x1b":  # another escape: skip it
                m2 = re.match(r"\x1b\[[0-9;?]*[A-Za-z]", line[pos:])
                pos += m2.end() if m2 else 1
                continue
            ch_ = line[pos]
            pos += 1
            fg, bg = pen.colours()
            px, py = pad + x * cw, pad + y * ch
            draw.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            if ch_ in "█▁▂▃▄▅▆▇":
                # Block elements drawn as rectangles, so gauges and sparklines have no gaps between cells.
                frac = {"█": 1.0, "▁": 1 / 8, "▂": 2 / 8, "▃": 3 / 8, "▄": 4 / 8, "▅": 5 / 8, "▆": 6 / 8, "▇": 7 / 8}[ch_]
                draw.rectangle([px, py + ch - int(ch * frac), px + cw - 1, py + ch - 1], fill=fg)
            elif ch_ in BOX:
                # Box drawing as lines from the cell's centre, so frames join across cells.
                up, down, left, right = BOX[ch_]
                cx, cy = px + cw // 2, py + ch // 2
                if up:
                    draw.line([cx, py, cx, cy], fill=fg)
                if down:
                    draw.line([cx, cy, cx, py + ch - 1], fill=fg)
                if left:
                    draw.line([px, cy, cx, cy], fill=fg)
                if right:
                    draw.line([cx, cy, px + cw - 1, cy], fill=fg)
            elif ch_ != " ":
                draw.text((px, py + 1), ch_, font=bold if pen.bold else font, fill=fg)
            if pen.underline:
                draw.line([px, py + ch - 2, px + cw - 1, py + ch - 2], fill=fg)
            x += 1
        # The rest of the line keeps the current background (tmux elides trailing cells).
    img.save(out)


if __name__ == "__main__":
    main()
