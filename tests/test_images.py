import io

import numpy as np
import pytest
from PIL import Image

from mmexplore.data.images import decode_image, load_image, load_images, to_rgb
from mmexplore.errors import InputError


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgba_composited_on_white():
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    out = decode_image(_png(img), "t.png")
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)


def test_palette_and_16bit_and_cmyk():
    pal = Image.new("P", (4, 4), 3)
    pal.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20, 200, 10, 10] + [0] * 756)
    assert decode_image(_png(pal), "p.png").getpixel((0, 0)) == (200, 10, 10)
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    deep = Image.fromarray(arr)  # 16-bit greyscale (mode I;16)
    assert decode_image(_png(deep), "d.png").getpixel((0, 0)) == (255, 255, 255)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    out = decode_image(_png(cmyk, "JPEG"), "c.jpg")
    r, g, b = out.getpixel((1, 1))
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation_applied():
    img = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    out = decode_image(_png(img, "JPEG", exif=exif), "r.jpg")
    assert out.size == (10, 20)


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue(), "a.gif")
    r, g, _b = out.getpixel((2, 2))
    assert r > 200 and g < 50


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"not an image at all", "not an image"),
        (_png(Image.new("RGB", (64, 64), (1, 2, 3)))[:60], "corrupt or truncated"),
    ],
)
def test_bad_bytes_named_errors(data, needle):
    with pytest.raises(InputError) as info:
        decode_image(data, "bad.png")
    assert "bad.png" in str(info.value) and needle in str(info.value)


def test_decompression_bomb_refused():
    big = Image.new("L", (9000, 9000))
    with pytest.raises(InputError, match="Mpx limit"):
        decode_image(_png(big), "bomb.png")


def test_missing_and_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


def test_load_images_keeps_good_files(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (5, 5)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    res = load_images([good, bad])
    assert len(res.images) == 1 and res.names == [str(good)]
    assert len(res.errors) == 1 and "bad.png" in res.errors[0]


def test_to_rgb_float_image():
    f = Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), "F")
    assert to_rgb(f).mode == "RGB"
