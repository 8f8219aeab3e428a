"""Optional layout readout term for shapes-world training (``--layout-weight``).

Why it exists: with CLIP's loss alone, relation order stays at chance on the shapes world
(README, *Order-sensitive models*). The image tower keeps where each colour is in its patch tokens
but not in the pooled embedding, and the text tower gives "A left of B" and "B left of A" the same
embedding: each side keeps only what the other already tells apart, so neither starts.

This term gives both sides a reason to start. One linear readout ``R`` (d → 3V, owned by the
trainer, not saved with the model) is applied to the image embedding *and* to the text embedding,
and both must predict the scene's layout from it: for each of the V attribute values (four
colours, three shapes, two sizes), whether it is present (image: in the scene; text: among the
objects the caption names) and the mean centre of the objects that have it, relative to the
centroid of those objects (image: all objects; text: the named ones). Relative centres are what a
caption can know: "a red circle left of a blue square" fixes the sign of red − blue along x, not
where the pair sits. Because the readout is shared, it asks for the *same* layout code in both
embeddings, so the contrastive term can then use it.

The loss per side is ``BCE(presence) + 10 · mean squared error of the centres`` over the values
present (centres in canvas widths). The two sides have their own weights (``--layout-weight``,
``--layout-text-weight``): the text side matters most, since a text tower that already tells
"A left of B" from "B left of A" gives the image tower a reason to (README, experiment table).
It needs the scene graph of each image, so it works only on the shapes-world stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmexplore.data.shapes import COLORS, SHAPES, SIZES
from mmexplore.training.readouts import linear_readout, readout_logits

# (attribute, value) pairs read out, in a fixed order.
LAYOUT_VALUES: tuple[tuple[str, str], ...] = (
    *(("color", c) for c in COLORS), *(("shape", s) for s in SHAPES), *(("size", z) for z in SIZES),
)
POSITION_WEIGHT = 10.0


def layout_targets(object_lists: Sequence[Sequence[Any]]) -> tuple[Any, Any]:
    """Presence and relative centre of every value in :data:`LAYOUT_VALUES`, per item.

    Parameters
    ----------
    object_lists : sequence of sequences of ShapeObject
        For each item, the objects it shows (image) or names (caption); may be empty.

    Returns
    -------
    (presence, centre) : Tensor (B, V) of 0/1, Tensor (B, V, 2)
        ``centre[b, v]`` is the mean (cx, cy) of item b's objects with value v minus the mean
        centre of all its objects, in canvas widths; zero where the value is absent.
    """
    import torch

    n = len(LAYOUT_VALUES)
    presence = torch.zeros(len(object_lists), n)
    centre = torch.zeros(len(object_lists), n, 2)
    for i, objects in enumerate(object_lists):
        if not objects:
            continue
        mx = sum(o.cx for o in objects) / len(objects)
        my = sum(o.cy for o in objects) / len(objects)
        for j, (attr, value) in enumerate(LAYOUT_VALUES):
            have = [o for o in objects if getattr(o, attr) == value]
            if have:
                presence[i, j] = 1.0
                centre[i, j, 0] = sum(o.cx for o in have) / len(have) - mx
                centre[i, j, 1] = sum(o.cy for o in have) / len(have) - my
    return presence, centre


def named_objects(caption: str, scene: Any) -> list[Any]:
    """The objects of ``scene`` that ``caption`` names (by colour and shape, e.g. "red circle")."""
    return [o for o in scene.objects if f"{o.color} {o.shape}" in caption]


def layout_loss(readout: Any, features: Any, presence: Any, centre: Any) -> Any:
    """The layout term of one side.

    Parameters
    ----------
    readout : torch.nn.Linear (d → 3V)
    features : Tensor (B, d), unit-norm embeddings
    presence, centre : Tensor (B, V), Tensor (B, V, 2), from :func:`layout_targets`

    Returns
    -------
    Tensor () : BCE of presence + :data:`POSITION_WEIGHT` × squared centre error (canvas widths²)
        averaged over the present values.
    """
    import torch.nn.functional as F

    n = len(LAYOUT_VALUES)
    out = readout_logits(readout, features)
    presence, centre = presence.to(out.device), centre.to(out.device)
    bce = F.binary_cross_entropy_with_logits(out[:, :n], presence)
    err = ((out[:, n:].view(-1, n, 2) - centre) ** 2).sum(-1)
    mse = (err * presence).sum() / presence.sum().clamp(min=1.0)
    return bce + POSITION_WEIGHT * mse


def make_readout(dim: int, device: str) -> Any:
    """The shared readout: ``torch.nn.Linear(dim, 3 · V)`` on ``device``."""
    return linear_readout(dim, 3 * len(LAYOUT_VALUES), device)


def layout_terms(readout: Any, img: Any, txt: Any, captions: Sequence[str], scenes: Sequence[Any]) -> tuple[Any, Any]:
    """Both sides of the term for one batch: ``(image term, text term)``, each Tensor ().

    ``img`` / ``txt`` are the batch's unit-norm image and true-caption embeddings (B, d); ``scenes``
    the scene graph of each image.
    """
    p_img, c_img = layout_targets([s.objects for s in scenes])
    p_txt, c_txt = layout_targets([named_objects(c, s) for c, s in zip(captions, scenes, strict=True)])
    return layout_loss(readout, img, p_img, c_img), layout_loss(readout, txt, p_txt, c_txt)
