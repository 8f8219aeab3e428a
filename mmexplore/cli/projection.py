"""Joint-space commands: ``project`` (UMAP/PCA/t-SNE + modality gap) and ``cca`` (docs/design.md §6, §8)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from mmexplore.cli.argtypes import any_int, float_range, int_range, nonneg_float, nonneg_int, positive_float
from mmexplore.cli.common import command, load_encoder
from mmexplore.errors import InputError


def _embeddings_from_args(args: argparse.Namespace) -> Any:
    """An :class:`EmbeddingSet` from ``--embeddings`` or from images/texts encoded by ``--model``."""
    from mmexplore.projection.embeddings_io import EmbeddingSet, read_embeddings

    given = bool(args.images or args.texts or args.captions)
    if args.embeddings:
        if given:
            raise InputError("give either --embeddings FILE or --images/--texts/--captions, not both")
        return read_embeddings(args.embeddings)
    from mmexplore.data.images import load_image
    from mmexplore.data.pairs import read_pairs

    if args.captions:
        if args.images or args.texts:
            raise InputError("give either --captions FILE or --images/--texts, not both")
        table = read_pairs(args.captions)
        image_paths, texts = table.images, table.texts
        ii, tt = np.nonzero(table.pairs)
    else:
        image_paths, texts = list(args.images or []), list(args.texts or [])
        if not image_paths:
            raise InputError("no images: pass --images FILE..., --captions FILE or --embeddings FILE")
        if not texts:
            raise InputError("no captions: pass --texts TEXT..., --captions FILE or --embeddings FILE")
        if len(image_paths) != len(texts):
            raise InputError(
                f"{len(image_paths)} images but {len(texts)} texts: image k pairs with text k, "
                "so give as many of each (or a --captions file)"
            )
        ii = tt = np.arange(len(texts))
    empty = [k for k, t in enumerate(texts) if not str(t).strip()]
    if empty:
        raise InputError(f"caption {empty[0] + 1} is empty")
    images = [load_image(p) for p in image_paths]
    encoder = load_encoder(args)
    img = encoder.encode_images(images)
    txt = encoder.encode_texts(texts)
    return EmbeddingSet(img, txt, np.stack([ii, tt], axis=1), [str(p) for p in image_paths], list(texts),
                        f"model {encoder.info.name}")


def cmd_project(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.projection import get_method, project_joint

    get_method(args.method)  # unknown method: fail before any encoding
    if args.dims not in (2, 3):
        raise InputError(f"--dims must be 2 or 3, got {args.dims}")
    es = _embeddings_from_args(args)
    params = {}
    if args.n_neighbors is not None:
        params["n_neighbors"] = args.n_neighbors
    if args.perplexity is not None:
        params["perplexity"] = args.perplexity
    res = project_joint(es.image, es.text, es.pairs, method=args.method, dims=args.dims, center=args.center,
                        shift=args.shift, random_state=args.seed, **params)
    out = res.to_dict()
    for pt in out["points"]:
        pt["label"] = (es.image_names if pt["modality"] == "image" else es.captions)[pt["index"]]
    return {"source": es.source, **out}


def cmd_cca(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.projection import CCA, cca_retrieval

    if args.reg < 0:
        raise InputError(f"--reg must be >= 0, got {args.reg}")
    es = _embeddings_from_args(args)
    x, y = es.paired_rows()
    cca = CCA(reg=args.reg).fit(x, y)
    out: dict[str, Any] = {
        "source": es.source,
        "n_pairs": len(x),
        "reg": args.reg,
        "correlations": cca.correlations_,
    }
    if not args.no_retrieval and len(np.unique(es.pairs[:, 0])) == len(es.pairs) == len(np.unique(es.pairs[:, 1])):
        # Retrieval needs one-to-one pairs (each row its own image and its own text).
        out["retrieval"] = cca_retrieval(x, y, reg=args.reg, seed=args.seed, max_queries=args.max_queries or None).to_dict()
    return out


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", nargs="+", metavar="FILE", help="image files (image k pairs with text k)")
    p.add_argument("--texts", nargs="+", metavar="TEXT", help="captions, one per image")
    p.add_argument("--captions", metavar="FILE", help="CSV/TSV/JSONL with image,text columns (many-to-many)")
    p.add_argument("--embeddings", metavar="FILE", help=".npz with arrays image and text (N×d, paired by row) or .parquet")
    p.add_argument("--seed", type=any_int, default=0, help="random seed (default 0)")


def register(commands: Any, evals: Any) -> None:
    from mmexplore.projection.cca import MAX_QUERIES
    from mmexplore.projection.methods import list_methods

    p = command(commands, "project", cmd_project, "2-D/3-D map of images and texts together, with the modality gap")
    _inputs(p)
    p.add_argument("--method", default="umap", help=f"projection method: {', '.join(list_methods())} (default umap)")
    p.add_argument("--dims", type=int_range(2, 3), default=2, help="2 or 3 (default 2)")
    p.add_argument("--center", action="store_true", help="centre each modality first (removes the modality gap)")
    p.add_argument("--shift", type=float_range(-1.0, 1.0), default=0.0, metavar="LAMBDA",
                   help="move images by -λ·gap and texts by +λ·gap (0.5 closes it), then re-normalise")
    p.add_argument("--n-neighbors", type=int_range(2, 1000), default=None,
                   help="UMAP neighbours (default 15, lowered for small data)")
    p.add_argument("--perplexity", type=positive_float, default=None,
                   help="t-SNE perplexity (default 30, lowered for small data)")

    p = command(commands, "cca", cmd_cca, "canonical correlations between paired image and text embeddings")
    _inputs(p)
    p.add_argument("--reg", type=nonneg_float, default=0.1, help="ridge r in Σ + rI on standardised features (default 0.1)")
    p.add_argument("--no-retrieval", action="store_true", help="skip the CCA-space vs raw-cosine retrieval comparison")
    p.add_argument("--max-queries", type=nonneg_int, default=MAX_QUERIES,
                   help=f"held-out R@1 averages over at most this many queries, each ranked against every held-out pair "
                        f"(default {MAX_QUERIES}; 0: all)")
