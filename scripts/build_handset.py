"""Build the hand-written relation set: hand-placed scenes drawn by the alternative renderer, texts written by hand.

Run from the repository root: ``.venv/bin/python scripts/build_handset.py``. Writes one PNG per
scene and ``pairs.csv`` (image, text, label) into ``mmexplore/assets/relation/handset/``. The wording deliberately differs from
the generator's (synonyms, "to the left of", "on top of", digits, longer everyday passages).
"""

from __future__ import annotations

import csv

from mmexplore.data.shapes import Scene, ShapeObject
from mmexplore.data.shapes_alt import render_scene_alt
from mmexplore.settings import get_settings

HERE = get_settings().assets_dir / "relation" / "handset"
R = {"small": 0.085, "large": 0.165}


def obj(shape: str, color: str, size: str, x: float, y: float, rot: float = 0.0) -> ShapeObject:
    return ShapeObject(shape, color, size, x, y, R[size], rot)


SCENES: dict[str, tuple[ShapeObject, ...]] = {
    "a": (obj("circle", "red", "large", 0.28, 0.5), obj("square", "blue", "large", 0.72, 0.52, 5)),
    "b": (obj("triangle", "yellow", "small", 0.5, 0.22), obj("square", "green", "large", 0.5, 0.68, -4)),
    "c": (obj("circle", "red", "small", 0.2, 0.3), obj("circle", "red", "small", 0.48, 0.74),
          obj("triangle", "blue", "large", 0.76, 0.34)),
    "d": (obj("circle", "green", "large", 0.52, 0.48),),
    "e": (obj("triangle", "blue", "small", 0.36, 0.6, 6),),
    "f": (obj("square", "yellow", "small", 0.2, 0.2), obj("triangle", "green", "large", 0.7, 0.28),
          obj("circle", "red", "large", 0.3, 0.7), obj("circle", "blue", "small", 0.78, 0.8)),
    "g": (obj("circle", "yellow", "large", 0.7, 0.3), obj("square", "red", "small", 0.28, 0.72, 8)),
    "h": (obj("square", "red", "large", 0.5, 0.5, -6),),
    "i": (obj("circle", "blue", "small", 0.25, 0.5), obj("circle", "blue", "large", 0.7, 0.52)),
    "j": (obj("square", "green", "large", 0.3, 0.3, 3), obj("triangle", "yellow", "small", 0.76, 0.24),
          obj("circle", "blue", "small", 0.52, 0.76)),
}

PAIRS: list[tuple[str, str, str]] = [
    # Anchorage: the text describes the whole picture
    ("a", "A red ball to the left of a blue box.", "Anchorage"),
    ("b", "Tiny yellow triangle on top of a big green square", "Anchorage"),
    ("c", "Two red circles and one large blue triangle", "Anchorage"),
    ("d", "a big green disc", "Anchorage"),
    ("f", "Shown: a small yellow square, a large green triangle, a big red circle and a little blue circle.",
     "Anchorage"),
    ("g", "There's a large yellow circle and a small red square.", "Anchorage"),
    # Bad Anchorage: a caption of the picture with one thing wrong
    ("a", "A blue circle to the left of a red square.", "Bad Anchorage"),
    ("b", "A small yellow triangle below a large green square.", "Bad Anchorage"),
    ("c", "Three red circles and a blue triangle.", "Bad Anchorage"),
    ("d", "A big green box.", "Bad Anchorage"),
    ("h", "A small red square.", "Bad Anchorage"),
    ("g", "A large yellow triangle and a small red square.", "Bad Anchorage"),
    # Illustration: a passage; the picture shows one exchangeable part of it
    ("e", "Every warning sign in our town uses a bold outline. Drivers learn to read them quickly. "
          "The small blue triangle marks a cycle path. Other signs are bigger and sit higher on the pole.", "Illustration"),
    ("d", "Our school logo went through many drafts. The first version was a big green circle. "
          "Later the designers added letters and a motto. Students voted for the final design in spring.", "Illustration"),
    ("h", "When the game starts, each player picks a token. The red square is the strongest piece on the board. "
          "Moves are made in turn. Whoever reaches the far corner first wins.", "Illustration"),
    ("g", "Kindergarten teachers love simple sorting games. Children put a large yellow circle next to a small red "
          "square and name the colours. Then they count the corners. It keeps them busy for a whole morning.", "Illustration"),
    ("a", "Flags are usually designed with only a few strong colours. A red circle left of a blue square would make "
          "a simple flag. Historians say simple flags are easier to remember. Many countries changed their flags "
          "in the last century.", "Illustration"),
    ("b", "Stacking games train balance and patience. Put a small yellow triangle on top of a large green square "
          "and you have a little house. Add more pieces to build a street. The tallest tower wins.", "Illustration"),
    # Bad Illustration: the same kind of passage, but the picture contradicts its part
    ("e", "Every warning sign in our town uses a bold outline. Drivers learn to read them quickly. "
          "The small red triangle marks a cycle path. Other signs are bigger and sit higher on the pole.", "Bad Illustration"),
    ("d", "Our school logo went through many drafts. The first version was a big green square. "
          "Later the designers added letters and a motto. Students voted for the final design in spring.", "Bad Illustration"),
    ("h", "When the game starts, each player picks a token. The blue square is the strongest piece on the board. "
          "Moves are made in turn. Whoever reaches the far corner first wins.", "Bad Illustration"),
    ("g", "Kindergarten teachers love simple sorting games. Children put a large green circle next to a small red "
          "square and name the colours. Then they count the corners. It keeps them busy for a whole morning.",
     "Bad Illustration"),
    ("a", "Flags are usually designed with only a few strong colours. A red triangle left of a blue square would make "
          "a simple flag. Historians say simple flags are easier to remember. Many countries changed their flags "
          "in the last century.", "Bad Illustration"),
    ("b", "Stacking games train balance and patience. Put a small yellow triangle under a large green square "
          "and you have a little house. Add more pieces to build a street. The tallest tower wins.", "Bad Illustration"),
    # Complementary: each side has something the other lacks
    ("c", "The blue triangle is the roof piece; the rest of the kit arrives next week.", "Complementary"),
    ("f", "A big green triangle and a red ball. We still need glue and scissors.", "Complementary"),
    ("j", "A small blue circle, the one we lost last summer.", "Complementary"),
    ("i", "The bigger blue ball is mine; my sister has a purple one at home.", "Complementary"),
    ("g", "Look for the yellow circle near the door, next to the coat rack.", "Complementary"),
    ("f", "Two circles sit in the bottom half, and the answer to question five is written on the back.", "Complementary"),
    # Contrasting: partial overlap, and what overlaps is contradicted
    ("c", "The green triangle is the roof piece; the rest of the kit arrives next week.", "Contrasting"),
    ("f", "A big green circle and a red ball. We still need glue and scissors.", "Contrasting"),
    ("j", "A small yellow circle, the one we lost last summer.", "Contrasting"),
    ("i", "The bigger red ball is mine; my sister has a purple one at home.", "Contrasting"),
    ("g", "Look for the yellow square near the door, next to the coat rack.", "Contrasting"),
    ("f", "Three circles sit in the bottom half, and the answer to question five is written on the back.", "Contrasting"),
    # Uncorrelated: nothing shared
    ("a", "Quarterly profits rose by four percent, beating forecasts.", "Uncorrelated"),
    ("d", "Mix the flour and the butter until the dough is smooth.", "Uncorrelated"),
    ("h", "A tiny yellow ball.", "Uncorrelated"),
    ("e", "The ferry leaves at half past seven every morning.", "Uncorrelated"),
    ("j", "My grandmother grew up on a farm near the coast.", "Uncorrelated"),
    ("b", "Two red circles.", "Uncorrelated"),
    # Interdependent: the text only makes sense with the picture
    ("a", "This is the layout I want on the poster.", "Interdependent"),
    ("f", "Copy this exactly, please.", "Interdependent"),
    ("d", "Here's the one I was telling you about!", "Interdependent"),
    ("h", "Does yours look like this?", "Interdependent"),
    ("j", "Pictured: the final arrangement.", "Interdependent"),
    ("e", "Just like the one above, but bigger.", "Interdependent"),
]


def main() -> None:
    sizes = [96, 112, 128, 144, 160, 120, 100, 136, 152, 104]
    for n, (name, objects) in enumerate(SCENES.items()):
        img = render_scene_alt(Scene(objects, seed=700 + n), sizes[n], style_seed=11 + n)
        img.save(HERE / f"{name}.png", optimize=True)
    with open(HERE / "pairs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text", "label"])
        for name, text, label in PAIRS:
            w.writerow([f"{name}.png", text, label])


if __name__ == "__main__":
    main()
