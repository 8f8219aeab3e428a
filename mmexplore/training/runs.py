"""Training runs on disk: list, show, compare, name (``mmexplore runs``, the Train page).

A run is a folder under :attr:`~mmexplore.settings.Settings.runs_dir` (``MMEXPLORE_RUNS_DIR``,
default ``runs``) written by :class:`~mmexplore.training.trainer.Trainer`; it loads as the model
``run:NAME`` anywhere a model spec is accepted. :func:`compare_rows` is the one table both
``mmexplore runs compare`` and the page print.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mmexplore.errors import InputError
from mmexplore.settings import get_settings
from mmexplore.training.trainer import read_events, read_run

# Small replays of short preset runs shipped with the app (run folders without weights).
SHIPPED_REPLAYS = get_settings().assets_dir / "replays"  # package data (mmexplore/assets/)
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Columns of the comparison table: (key, header).
COMPARE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run"), ("objective", "objective"), ("arch", "arch"), ("status", "status"), ("steps", "steps"),
    ("wall_s", "wall s"), ("final_loss", "loss"), ("tau", "τ"), ("i2t@1", "i2t R@1"), ("t2i@1", "t2i R@1"),
    ("color_binding", "colour binding"), ("relation_order", "relation order"), ("modality_gap", "gap"),
    ("dim_corr", "dim corr"),
)


def check_run_name(name: str) -> str:
    """``name`` when it is a valid run name (letters, digits, ``_.-``; no path), else :class:`InputError`."""
    name = (name or "").strip()
    if not RUN_NAME.match(name) or ".." in name:
        raise InputError(f"run name {name!r}: use 1–64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    return name


def runs_dir() -> Path:
    """The folder runs live in (settings)."""
    return get_settings().runs_dir


def resolve_run(name_or_path: str | Path) -> Path:
    """The folder of a run given by name (under the runs folder) or by path."""
    text = str(name_or_path).strip()
    if text.startswith("run:"):
        text = text[4:]
    path = Path(text).expanduser()
    if RUN_NAME.match(text) and (runs_dir() / text).is_dir():
        return runs_dir() / text
    if path.is_dir() and ((path / "run.json").is_file() or (path / "metrics.json").is_file()):
        return path
    raise InputError(f"no training run named '{text}' (see `mmexplore runs list`)")


def list_runs(folder: Path | None = None) -> list[dict[str, Any]]:
    """One summary row per run folder (newest first); folders that are not runs are skipped."""
    folder = Path(folder) if folder is not None else runs_dir()
    if not folder.is_dir():
        return []
    rows = []
    for sub in folder.iterdir():
        if sub.is_dir() and ((sub / "run.json").is_file() or (sub / "metrics.json").is_file()):
            try:
                rows.append(summarize(sub))
            except (InputError, json.JSONDecodeError, OSError):
                continue
    return sorted(rows, key=lambda r: r.get("updated") or "", reverse=True)


def curves(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The run's ``step`` and ``eval`` events (what the charts draw)."""
    events = read_events(Path(folder) / "train_log.jsonl")
    return {"step": [e for e in events if e.get("event") == "step"],
            "eval": [e for e in events if e.get("event") == "eval"]}


def summarize(folder: Path) -> dict[str, Any]:
    """The comparison row of one run: settings, budget used and the last held-out figures.

    Held-out figures (R@1, binding, relation order, gap, dim corr) are the last live evaluation on the
    probe scenes (training renderer), so a run stopped early is compared on the same footing.
    """
    folder = Path(folder)
    run = read_run(folder)
    cfg = run.get("config", {})
    data = curves(folder)
    last_eval = data["eval"][-1] if data["eval"] else {}
    steps = data["step"]
    tail = [e["loss"] for e in steps[-50:] if e.get("loss") is not None]
    row: dict[str, Any] = {
        "run": folder.name, "name": run.get("name", folder.name), "objective": run.get("objective"),
        "arch": cfg.get("arch"), "status": run.get("status"), "steps": run.get("step"),
        "wall_s": run.get("wall_s", steps[-1].get("elapsed_s") if steps else None),
        "final_loss": round(sum(tail) / len(tail), 4) if tail else None,
        "tau": steps[-1].get("tau") if steps else None,
        "updated": run.get("updated"), "spec": f"run:{folder.name}", "path": str(folder),
    }
    for key in ("i2t@1", "t2i@1", "color_binding", "relation_order", "modality_gap", "dim_corr"):
        row[key] = last_eval.get(key)
    row["eval_step"] = last_eval.get("step")
    return row


def compare_rows(names: list[str]) -> list[dict[str, Any]]:
    """Comparison rows of the named runs, in the given order."""
    if not names:
        raise InputError("name at least one run to compare (see `mmexplore runs list`)")
    return [summarize(resolve_run(n)) for n in names]


def format_table(rows: list[dict[str, Any]], columns: tuple[tuple[str, str], ...] = COMPARE_COLUMNS) -> str:
    """A plain-text table (what ``mmexplore runs compare`` prints)."""
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    table = [[h for _, h in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rename_run(name: str, new_name: str) -> Path:
    """Rename a finished or stopped run (its folder, so it loads as ``run:NEW``); returns the new folder."""
    src = resolve_run(name)
    new_name = check_run_name(new_name)
    run = read_run(src)
    if run.get("status") == "running":
        raise InputError(f"run '{src.name}' is still training: stop it before renaming")
    dst = src.parent / new_name
    if dst.exists():
        raise InputError(f"a run named '{new_name}' already exists")
    src.rename(dst)
    path = dst / "run.json"
    if path.is_file():
        data = json.loads(path.read_text())
        data["name"] = new_name
        data.setdefault("config", {})["out"] = str(dst)
        path.write_text(json.dumps(data, indent=1))
    return dst
