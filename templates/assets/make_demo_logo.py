"""Draw the demo lab logo (demo-logo.png): a navy ring around a balance. Run from anywhere:

    python templates/assets/make_demo_logo.py

A lab puts its own logo file anywhere and names it in its profile ([lab] logo = "logo.png");
this one only shows where a logo goes.
"""

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 96
NAVY = (31, 59, 99, 255)

image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
draw = ImageDraw.Draw(image)
draw.ellipse((3, 3, SIZE - 4, SIZE - 4), outline=NAVY, width=6)
draw.line((48, 22, 48, 72), fill=NAVY, width=5)  # column
draw.line((24, 34, 72, 34), fill=NAVY, width=4)  # beam
draw.polygon([(18, 56), (30, 56), (24, 38)], outline=NAVY, fill=None)  # left pan
draw.polygon([(66, 56), (78, 56), (72, 38)], outline=NAVY, fill=None)  # right pan
draw.line((16, 57, 32, 57), fill=NAVY, width=3)
draw.line((64, 57, 80, 57), fill=NAVY, width=3)
draw.rectangle((36, 72, 60, 77), fill=NAVY)  # foot
image.quantize(colors=4).save(Path(__file__).with_name("demo-logo.png"), optimize=True)
