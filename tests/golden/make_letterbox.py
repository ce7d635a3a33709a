"""Writes letterbox_373x454_64.json: a golden canvas that Python and the Kotlin core are both held to.

The source image is defined by a formula both sides can generate (373 wide x 454 high, RGB):
    r = (3x + 5y) mod 256,  g = (x * y) mod 251,  b = (x + 2y) mod 256
It is letterboxed into 64x64 (pad value 7) by a plain per-pixel loop written from the
definition in edge/core/preprocess.py's docstring, deliberately not calling that module:
grey = 0.299 R + 0.587 G + 0.114 B; scale s = min(64/454, 64/373); box 64 high x
round-half-up(373 s) = 53 wide, left (64 - 53) // 2 = 5; bilinear with half-pixel centres,
clamped at the edges; round half up to uint8. Run: python tests/golden/make_letterbox.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SRC_W, SRC_H, OUT, PAD = 373, 454, 64, 7


def source_rgb(x: int, y: int) -> tuple[int, int, int]:
    return (3 * x + 5 * y) % 256, (x * y) % 251, (x + 2 * y) % 256


def grey(x: int, y: int) -> float:
    r, g, b = source_rgb(x, y)
    return 0.299 * r + 0.587 * g + 0.114 * b


def axis(o: int, n_in: int, n_out: int) -> tuple[int, int, float]:
    s = min(max((o + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1)
    i0 = math.floor(s)
    return i0, min(i0 + 1, n_in - 1), s - i0


def canvas() -> tuple[dict[str, int], list[list[int]]]:
    s = min(OUT / SRC_H, OUT / SRC_W)
    nh, nw = math.floor(SRC_H * s + 0.5), math.floor(SRC_W * s + 0.5)
    top, left = (OUT - nh) // 2, (OUT - nw) // 2
    rows = [[PAD] * OUT for _ in range(OUT)]
    for oy in range(nh):
        y0, y1, fy = axis(oy, SRC_H, nh)
        for ox in range(nw):
            x0, x1, fx = axis(ox, SRC_W, nw)
            v = (1 - fy) * ((1 - fx) * grey(x0, y0) + fx * grey(x1, y0)) + fy * ((1 - fx) * grey(x0, y1) + fx * grey(x1, y1))
            rows[top + oy][left + ox] = min(255, max(0, math.floor(v + 0.5)))
    return {"top": top, "left": left, "height": nh, "width": nw}, rows


def main() -> None:
    geometry, rows = canvas()
    assert geometry == {"top": 0, "left": 5, "height": 64, "width": 53}, geometry  # checked by hand, see the docstring
    doc = {
        "format": "fracture-edge/golden-letterbox",
        "version": 1,
        "source": {
            "width": SRC_W,
            "height": SRC_H,
            "channels": "rgb",
            "formula": "r = (3x + 5y) mod 256, g = (x*y) mod 251, b = (x + 2y) mod 256",
        },
        "size": [OUT, OUT],
        "pad_value": PAD,
        "geometry": geometry,
        "canvas": rows,
    }
    out = Path(__file__).with_name(f"letterbox_{SRC_W}x{SRC_H}_{OUT}.json")
    out.write_text(json.dumps(doc, separators=(",", ":")).replace("],[", "],\n[") + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
