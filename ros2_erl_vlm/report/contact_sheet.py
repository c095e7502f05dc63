"""``contact_sheet.png``: rated frames in a grid, so a user sees at a glance what the rater gets wrong.

Each cell is one rated segment's last frame, captioned with the rater's class and, in simulation,
the true class (the task's own binning of the simulator truth stored with the rating). Borders:
red (thick) = wrong, green = right, grey = an abstention (its reason in the caption), black = no
truth to compare with.

Where the frame comes from, in order:

1. the frames stored with the rating: the rater's log with ``store_frames`` (graph:
   ``vlm_rater/ratings.erlr``), or the reward model's input for an image reward model;
2. re-rendered from the MuJoCo state, when the rating's request carries it (``requests.erlr``,
   array ``sim_state``: per step of the segment, :meth:`MetaWorldTaskEnv.sim_state
   <ros2_erl_vlm.envs.metaworld_env.MetaWorldTaskEnv.sim_state>`, qpos, qvel and the mocap pose;
   every simulated run keeps it, the oracle and camera-off runs included): the episode is reset
   with its seed (:func:`~ros2_erl_vlm.core.seeds.episode_seed`, which places the objects and goal
   exactly as in the run) and the state is set, so the frame is the one the run saw (pixel for
   pixel, at the sheet's size);
3. otherwise a "no frame" cell (a run from before requests kept the state, a real arm without
   stored frames). The border still says whether the rating was right.

At most ``max_cells`` cells: every wrong rating first (up to half the sheet, newest first), the rest
the newest other answers; shown in the order they were rated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ros2_erl_vlm.report.read_run import Rating, RunData

#: Cells on one sheet by default.
MAX_CELLS = 48
COLUMNS = 8
#: Border colours (matplotlib names) and widths (points) by cell status.
BORDERS = {"wrong": ("red", 6.0), "right": ("tab:green", 2.5), "abstained": ("0.55", 2.5),
           "no truth": ("black", 1.0)}


@dataclass
class Cell:
    """One cell of the sheet: the rating, its frame (None: no frame) and where the frame came from."""

    rating: Rating
    frame: np.ndarray | None
    source: str  # "stored" | "re-rendered" | "none"

    @property
    def status(self) -> str:
        """``wrong``, ``right``, ``abstained`` or ``no truth``."""
        r = self.rating
        if r.label is None:
            return "abstained"
        if r.truth_class is None:
            return "no truth"
        return "wrong" if r.wrong else "right"


@dataclass
class SheetLayout:
    """What was drawn: the cells and each cell's box in the PNG's pixels ``(x0, y0, x1, y1)``,
    y from the top."""

    path: Path
    cells: list[Cell]
    boxes: list[tuple[int, int, int, int]]
    size: tuple[int, int]  # (width, height)
    frame_sources: dict[str, int]


def choose(ratings: list[Rating], max_cells: int = MAX_CELLS) -> list[Rating]:
    """The ratings to show (module docstring), in log order."""
    if len(ratings) <= max_cells:
        return list(ratings)
    index = {id(r): i for i, r in enumerate(ratings)}
    wrong = [r for r in reversed(ratings) if r.wrong][: max_cells // 2]
    taken = {id(r) for r in wrong}
    rest = [r for r in reversed(ratings) if id(r) not in taken][: max_cells - len(wrong)]
    return sorted(wrong + rest, key=lambda r: index[id(r)])


class Rerenderer:
    """Renders a rated state from its MuJoCo state (``sim_state``) with the run's task camera."""

    def __init__(self, task: str, layout: str | None, seed: int, image_size: int = 128) -> None:
        from ros2_erl_vlm.envs import make_env

        self.env = make_env(task, seed=seed, render=True, image_size=image_size, layout=layout)
        self.seed = int(seed)

    def render(self, episode: int, sim_state: np.ndarray) -> np.ndarray:
        """The frame of training episode ``episode`` at ``sim_state`` (``MetaWorldTaskEnv.sim_state``).

        Raises:
            ValueError: the state does not fit the task (another task's, or a damaged record).
        """
        from ros2_erl_vlm.core import seeds

        self.env.reset(seed=seeds.episode_seed(self.seed, int(episode)))
        self.env.set_sim_state(sim_state)
        frame = self.env.render()
        assert frame is not None
        return frame

    def close(self) -> None:
        """Free the renderer."""
        self.env.close()


def cells_for(run: RunData, ratings: list[Rating], image_size: int = 128) -> list[Cell]:
    """A cell per rating with its frame (stored, re-rendered or none; module docstring)."""
    out: list[Cell] = []
    renderer: Rerenderer | None = None
    can_render = run.task is not None and run.seed is not None
    try:
        for r in ratings:
            if r.frames is not None and len(r.frames):
                out.append(Cell(r, np.asarray(r.frames[-1]), "stored"))
                continue
            if can_render and r.sim_state is not None and r.episode is not None:
                try:
                    if renderer is None:
                        renderer = Rerenderer(str(run.task), run.layout, int(run.seed or 0), image_size)
                    out.append(Cell(r, renderer.render(r.episode, r.sim_state), "re-rendered"))
                    continue
                except (ValueError, RuntimeError, ImportError) as exc:
                    run.notes.append(f"re-rendering rating {r.query_id} failed ({exc}); "
                                     "drawn without a frame")
                    can_render = False
            out.append(Cell(r, None, "none"))
    finally:
        if renderer is not None:
            renderer.close()
    return out


def _caption(cell: Cell, names: tuple[str, ...]) -> str:
    r = cell.rating

    def name(c: int | None) -> str:
        return "?" if c is None else names[c] if c < len(names) else f"class {c}"

    where = f"ep {r.episode} step {r.steps[-1] if r.steps else '?'}" + (f" r{r.round}" if r.round else "")
    if r.label is None:
        reason = (r.abstain_reason or "no reason")[:28]
        return f"ABSTAINED: {reason}\ntruth {name(r.truth_class)} | {where}"
    mark = "WRONG  " if cell.status == "wrong" else ""
    return f"{mark}rated {name(r.label)} | truth {name(r.truth_class)}\n{where}"


def draw_sheet(run: RunData, path: Path, max_cells: int = MAX_CELLS, image_size: int = 128) -> SheetLayout:
    """Draw the contact sheet of ``run`` into ``path`` (module docstring); returns its layout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = choose(run.ratings, max_cells)
    cells = cells_for(run, shown, image_size)
    cols = min(COLUMNS, max(1, len(cells)))
    rows = max(1, math.ceil(len(cells) / cols))
    dpi = 100
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.45 * rows + 0.8), dpi=dpi, squeeze=False)
    names = run.class_names
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for ax, cell in zip(axes.flat, cells, strict=False):
        ax.set_frame_on(True)
        if cell.frame is not None:
            ax.imshow(cell.frame, interpolation="nearest")
        else:
            ax.imshow(np.full((8, 8, 3), 225, dtype=np.uint8))
            ax.text(0.5, 0.5, "no frame", ha="center", va="center", transform=ax.transAxes,
                    fontsize=9, color="0.35")
        colour, width = BORDERS[cell.status]
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(width)
            if cell.status == "abstained":
                spine.set_linestyle((0, (3, 2)))
        ax.set_title(_caption(cell, names), fontsize=6.5,
                     color="red" if cell.status == "wrong" else "black")
    sources = {s: sum(c.source == s for c in cells) for s in ("stored", "re-rendered", "none")}
    wrong = sum(c.status == "wrong" for c in cells)
    abst = sum(c.status == "abstained" for c in cells)
    total_wrong = sum(r.wrong for r in run.ratings)
    if not cells:
        axes[0, 0].text(0.5, 0.5, "no ratings yet", ha="center", va="center",
                        transform=axes[0, 0].transAxes, fontsize=11, color="0.35")
        axes[0, 0].set_frame_on(True)
    frames_note = "" if not sources["none"] else (
        f"; {sources['none']} without a frame (the logs keep no frame and no MuJoCo state)")
    fig.suptitle(f"{run.path.name}: {len(cells)} of {len(run.ratings)} ratings ({total_wrong} wrong in all); "
                 f"shown: {wrong} wrong (red border), {abst} abstentions (grey dashed){frames_note}",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.45 * rows + 0.8)))
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    boxes = []
    for ax in list(axes.flat)[: len(cells)]:
        bb = ax.get_window_extent()
        boxes.append((round(bb.x0), round(height - bb.y1), round(bb.x1), round(height - bb.y0)))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return SheetLayout(path, cells, boxes, (width, height), sources)


def describe_frames(layout: SheetLayout) -> str:
    """Where the sheet's frames came from, in words (for the command's output)."""
    s = layout.frame_sources
    parts = [f"{s[k]} {k}" for k in ("stored", "re-rendered") if s[k]]
    if s["none"]:
        parts.append(f"{s['none']} without a frame")
    return ", ".join(parts) or "no cells"
