"""The run report (``python -m ros2_erl_vlm.report``) on run directories built with the package's own
writers (MetricsLogger CSVs, the RewardLearner's rating/request logs and model files, the rater's
RatingLogRater log), on a run still being written, and on a real short in-process run.

Checks: the PNGs exist and are not blank, the summary's numbers equal the CSVs' and the rating
log's aggregates, wrong ratings get a red border on the contact sheet (read back from the PNG's
pixels), an oracle run without a camera gets its rated frames back exactly (re-rendered from the
MuJoCo states its requests keep), bad directories exit 1.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.rating.dataset import read_ratings
from ros2_erl_vlm.core.rating.quality import ratings_agreement
from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult, SimTruth
from ros2_erl_vlm.core.record_log import encode_record
from ros2_erl_vlm.core.reward.reward_learner import RewardLearner
from ros2_erl_vlm.envs import load_task
from ros2_erl_vlm.raters.rating_log import RatingLogRater
from ros2_erl_vlm.report import make_report, report_hint
from ros2_erl_vlm.report.cli import main
from ros2_erl_vlm.report.contact_sheet import draw_sheet
from ros2_erl_vlm.report.read_run import find_run, read_run

TASK = "reach-v3"
ROOT = Path(__file__).resolve().parents[3]
EVAL_SUCCESS = [0.0, 0.5, 1.0, 0.5, 0.25]


def _bench_success_at() -> Any:
    """``bench/learning.py``'s success_at (the benchmark's definition of "success at N")."""
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "bench" / "learning.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.success_at


class ChosenRater:
    """A rater that answers each query with the result chosen for it (for the rater's own log)."""

    backend_id = "test"

    def __init__(self) -> None:
        self.results: dict[str, RatingResult] = {}

    def rate(self, queries: list[RatingQuery]) -> list[RatingResult]:
        """The chosen results, in order."""
        return [self.results[q.query_id] for q in queries]


def _frame(episode: int, step: int, size: int = 32) -> np.ndarray:
    """A textured blue-ish test frame (never red at the edges)."""
    yy, xx = np.mgrid[0:size, 0:size]
    f = np.zeros((size, size, 3), np.uint8)
    f[..., 0] = 20
    f[..., 1] = (xx * 4 + episode * 10) % 120
    f[..., 2] = 120 + (yy * 3 + step) % 120
    return f


def build_run(root: Path, kind: str, rounds: int = 2, per_round: int = 12) -> Path:
    """A run directory written by the package's writers: ``kind`` ``in-process`` or ``graph``."""
    task = load_task(TASK)
    n = task.num_classes
    graph = kind == "graph"
    agent_dir = root / "sac_agent" if graph else root
    learner_dir = root / "reward_learner" if graph else root
    cfg = LoopConfig(num_classes=n, queries_per_round=per_round, seed=4)
    cfg.reward.hidden_dim, cfg.reward.hidden_layers, cfg.reward.epochs = 16, 1, 2
    learner = RewardLearner(cfg, 39, TaskInfo(task.name, task.instruction, task.class_names(n)),
                            learner_dir, bin_truth=task.bin_truth)
    rater = None
    inner = ChosenRater()
    if graph:
        rater = RatingLogRater(inner, root / "vlm_rater" / "ratings.erlr", store_frames=True)
    logger = MetricsLogger(agent_dir, tensorboard=False)
    reward_log = logger if not graph else MetricsLogger(learner_dir, tensorboard=False)
    rng = np.random.default_rng(0)
    ep_len, episode, step = 20, 0, 0
    for rnd in range(rounds):
        for _ in range(2):  # two episodes per round, progress rising to the top of the range
            learner.observe(episode, 0, rng.normal(size=39), np.zeros(0), None, False)
            for t in range(1, ep_len + 1):
                p = t / ep_len
                learner.observe(episode, t, rng.normal(size=39), rng.uniform(-1, 1, 4),
                                SimTruth(10 * p, p >= 0.95, p), t == ep_len)
            step += ep_len
            logger.log("train", step, {"episode": episode, "true_return": 10.0 * episode,
                                       "learned_return": 1.0, "success": float(episode % 3 == 0),
                                       "length": ep_len})
            episode += 1
        reqs = learner.start_round()
        learner.due_for_sending(time.monotonic(), 0.0)
        for i, req in enumerate(reqs):
            assert req.truth is not None
            last = req.truth[-1]
            truth = task.bin_truth(last.progress or 0.0, last.success, n)
            label: int | None = truth
            if i % 4 == 1:
                label = (truth + 1) % n  # wrong on purpose
            elif i % 7 == 3:
                label = None
            result = RatingResult(req.request_id, label, n, "test",
                                  abstain_reason="" if label is not None else "test abstains")
            if rater is not None:
                inner.results[req.request_id] = result
                frames = np.stack([_frame(req.episode, s) for s in req.steps])
                rater.rate([RatingQuery(req.episode, req.steps, task.instruction, task.class_names(n),
                                        frames=frames, query_id=req.request_id)])
            learner.on_rating(req.request_id, result)
        learner.train()
        labels = [lab for _, lab in learner.round_answers]
        reward_log.log("reward", learner.env_steps, {
            "asked": len(reqs), "rated": sum(lab is not None for lab in labels),
            "abstained": sum(lab is None for lab in labels), **learner.last_round_quality,
            "dataset": len(learner.dataset), "model_version": learner.version})
        if graph:
            logger.log("relabel", step, {"version": learner.version, "relabelled": step, "first": rnd == 0})
    for i, rate in enumerate(EVAL_SUCCESS):
        logger.log("eval", 100 * (i + 1), {"success_rate": rate, "true_return": 50.0 + i})
    learner.close()
    logger.close()
    if reward_log is not logger:
        reward_log.close()
    if rater is not None:
        rater.close()
    if not graph:  # what the in-process command writes beside its logs
        from ros2_erl_vlm.train import RUN_SETTINGS_FILE, build_parser, make_config, run_settings

        args = build_parser().parse_args(["--task", TASK, "--seed", "4", "--rater", "oracle"])
        settings = run_settings(args, make_config(args, n), task.layout)
        write_text_atomic(root / RUN_SETTINGS_FILE, json.dumps(settings))
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def check_summary_matches(run_dir: Path, summary: dict[str, Any]) -> None:
    """Every number of the summary equals the aggregate of the run's own files."""
    graph = (run_dir / "sac_agent").is_dir()
    agent = run_dir / "sac_agent" if graph else run_dir
    learner = run_dir / "reward_learner" if graph else run_dir
    train, evals = _rows(agent / "train.csv"), _rows(agent / "eval.csv")
    reward = _rows(learner / "reward.csv") if (learner / "reward.csv").exists() else []
    steps = [int(float(r["step"])) for r in train + evals + reward]
    assert summary["steps"] == max(steps)
    assert summary["episodes"] == len(train)
    rates = [float(r["success_rate"]) for r in evals]
    ev = summary["eval"]
    assert ev["evaluations"] == len(evals)
    assert ev["last_success_rate"] == rates[-1] and ev["best_success_rate"] == max(rates)
    assert ev["last_step"] == int(float(evals[-1]["step"]))
    bench = _bench_success_at()([{"step": float(r["step"]), "success_rate": r["success_rate"]} for r in evals])
    assert ev["success_at"] == {str(k): v for k, v in bench.items()}
    assert ev["success_at_last"] == bench[max(bench)]
    assert summary["train_success_rate"] == pytest.approx(np.mean([float(r["success"]) for r in train]))
    ro = summary["reward_rounds"]
    assert ro["rounds"] == len(reward)
    for key in ("asked", "rated", "abstained"):
        assert ro[key] == sum(int(float(r[key])) for r in reward), key
    if reward and reward[-1].get("truth_agreement"):
        assert ro["last_truth_agreement"] == float(reward[-1]["truth_agreement"])
    assert summary["reward_model"]["versions_trained"] == max(int(float(r["model_version"])) for r in reward)
    records = read_ratings(learner / "ratings.erlr")
    ra = summary["ratings"]
    assert ra["records"] == len(records)
    assert ra["rated"] == sum(r["label"] is not None for r in records)
    assert ra["abstentions"] == sum(r["label"] is None for r in records)
    n = int(records[0]["num_classes"])
    assert ra["per_class"] == [sum(r["label"] == c for r in records) for c in range(n)]
    quality = ratings_agreement(records, load_task(TASK).bin_truth, n)
    assert round(ra["truth_agreement"], 4) == quality["accuracy"]
    assert round(ra["truly_above_bottom"], 4) == quality["truly_above_bottom"]
    assert ra["with_truth"] == quality["answered"]


def _png(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(path))[..., :3]


def _not_blank(path: Path) -> None:
    img = _png(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert float(img.var()) > 1e-3, f"{path} looks blank"


def _is_red(px: np.ndarray) -> bool:
    return bool(px[0] > 0.8 and px[1] < 0.25 and px[2] < 0.25)


@pytest.fixture(scope="module")
def inproc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An in-process run directory (two rounds of ratings, some wrong, one abstention)."""
    return build_run(tmp_path_factory.mktemp("inproc") / "run", "in-process")


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A graph run directory (node folders; the rater's log keeps the frames)."""
    return build_run(tmp_path_factory.mktemp("graph") / "run", "graph")


def test_in_process_report(inproc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([str(inproc), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("report.png", "contact_sheet.png", "summary.txt"):
        assert str(out / name) in printed, printed
    _not_blank(out / "report.png")
    _not_blank(out / "contact_sheet.png")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "in-process" and summary["task"] == TASK and summary["seed"] == 4
    check_summary_matches(inproc, summary)
    assert summary["ratings"]["wrong"] > 0 and summary["ratings"]["abstentions"] > 0
    assert summary["reward_model"]["model_files"] == 2
    assert summary["reward_model"]["spearman_version"] == 2
    text = (out / "summary.txt").read_text()
    assert f"{summary['ratings']['rated']} rated" in text and "abstentions" in text


def test_graph_report_and_sheet_marks_wrong(graph_run: Path, tmp_path: Path) -> None:
    run = read_run(graph_run)
    assert run.kind == "graph" and run.task == TASK  # found from the ratings' instruction
    files = make_report(graph_run, tmp_path / "out")
    summary = json.loads(files.summary_json.read_text())
    check_summary_matches(graph_run, summary)
    assert summary["reward_model"]["adopted_by_agent"] == 2
    _not_blank(files.report_png)

    layout = draw_sheet(run, tmp_path / "sheet.png")
    assert layout.frame_sources["stored"] == len(layout.cells) > 0
    img = _png(layout.path)
    assert img.shape[:2] == (layout.size[1], layout.size[0])
    statuses = [c.status for c in layout.cells]
    assert "wrong" in statuses and "right" in statuses and "abstained" in statuses
    for cell, (x0, y0, x1, y1) in zip(layout.cells, layout.boxes, strict=True):
        mid_y, mid_x = (y0 + y1) // 2, (x0 + x1) // 2
        edges = [img[mid_y, x0], img[mid_y, x1 - 1], img[y0, mid_x], img[y1 - 1, mid_x]]
        if cell.status == "wrong":
            assert all(_is_red(px) for px in edges), (cell.rating.query_id, edges)
        else:
            assert not any(_is_red(px) for px in edges), (cell.status, edges)
        assert not _is_red(img[mid_y, mid_x])  # the frame itself is not red


def test_node_folder_names_its_run(graph_run: Path) -> None:
    assert find_run(graph_run / "sac_agent") == (graph_run.resolve(), "graph")


def test_run_in_progress(inproc: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    shutil.copytree(inproc, run_dir, ignore=shutil.ignore_patterns("report"))
    for name in ("summary.json", "checkpoint.pt"):
        (run_dir / name).unlink(missing_ok=True)
    before = read_run(run_dir)
    with open(run_dir / "train.csv", "a") as fh:
        fh.write("999,7,12.5")  # the writer is in the middle of a row
    with open(run_dir / "eval.csv", "a") as fh:
        fh.write("900,0.")
    record = encode_record({"kind": "rating", "query_id": "half", "label": 1, "num_classes": 3},
                           {"input": np.zeros((1, 39), np.float32)})
    with open(run_dir / "ratings.erlr", "ab") as fh:
        fh.write(record[: len(record) // 2])  # a rating being appended
    (run_dir / "reward.csv").unlink()  # a stream not written yet
    run = read_run(run_dir)
    assert len(run.train) == len(before.train) and len(run.eval) == len(before.eval)
    assert len(run.ratings) == len(before.ratings) and not run.reward
    assert any("half-written last line" in n for n in run.notes)
    assert any("not a complete record" in n for n in run.notes)
    files = make_report(run_dir)
    assert files.report_png.parent == run_dir / "report"
    summary = json.loads(files.summary_json.read_text())
    assert not summary["finished"] and summary["episodes"] == len(before.train)
    assert summary["reward_rounds"]["quality_source"] == "ratings.erlr"  # recomputed per round
    _not_blank(files.report_png)


def test_streams_missing_say_no_data(tmp_path: Path) -> None:
    run_dir = tmp_path / "bare"
    run_dir.mkdir()
    logger = MetricsLogger(run_dir, tensorboard=False)
    logger.log("eval", 100, {"success_rate": 0.5, "true_return": 3.0})
    logger.close()
    files = make_report(run_dir, task=TASK)
    summary = json.loads(files.summary_json.read_text())
    assert summary["ratings"]["records"] == 0 and summary["episodes"] == 0
    assert summary["eval"]["last_success_rate"] == 0.5
    _not_blank(files.report_png)
    _not_blank(files.contact_sheet_png)


def test_bad_dirs_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 1
    assert "error:" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "not a run directory" in capsys.readouterr().err
    (tmp_path / "file.txt").write_text("x")
    assert main([str(tmp_path / "file.txt")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_report_hint_names_the_command(tmp_path: Path) -> None:
    hint = report_hint(tmp_path / "run")
    assert f"python -m ros2_erl_vlm.report {tmp_path / 'run'}" in hint
    assert str(tmp_path / "run" / "report" / "report.png") in hint


class FilmedEnv:
    """The task env as a camera-off loop sees it (``render()`` gives None, so nothing rated has a
    frame), filming every reset and step on the side, keyed by (reset seed, step)."""

    def __init__(self, env: Any) -> None:
        self.env, self.frames = env, {}
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self._seed: int | None = None
        self._t = 0

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset and film the first frame."""
        out = self.env.reset(seed=seed)
        self._seed, self._t = seed, 0
        self.frames[(seed, 0)] = self.env.render()
        return out

    def step(self, action: np.ndarray) -> tuple[Any, ...]:
        """Step and film the frame the step leaves."""
        out = self.env.step(action)
        self._t += 1
        self.frames[(self._seed, self._t)] = self.env.render()
        return out

    def render(self) -> None:
        """No camera (as the oracle's runs)."""
        return None


@pytest.mark.render
def test_oracle_run_without_camera_gets_its_rated_frames_back(tmp_path: Path) -> None:
    """A real in-process oracle run with the camera off: each rating's request keeps the MuJoCo
    state of its steps, and the contact sheet re-renders every rated state to exactly the frame
    the run's env showed at that step."""
    from dataclasses import replace

    from ros2_erl_vlm.core import seeds
    from ros2_erl_vlm.core.loop import ErlVlmTrainer
    from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
    from ros2_erl_vlm.core.rl.sac import SACConfig
    from ros2_erl_vlm.envs import make_env
    from ros2_erl_vlm.raters.oracle import OracleConfig, OracleRater

    seed, size, n = 4, 64, 3
    task = replace(load_task(TASK), max_episode_steps=100)
    env = FilmedEnv(make_env(task, seed=seed, render=True, image_size=size))
    cfg = LoopConfig(total_steps=500, seed=seed, num_classes=n, num_seed_steps=200, num_unsup_steps=100,
                     query_every=150, queries_per_round=8, eval_episodes=0, replay_capacity=2000,
                     sac=SACConfig(hidden_dim=16, hidden_layers=1, batch_size=16),
                     reward=RewardModelConfig(hidden_dim=16, hidden_layers=1, epochs=1))
    run_dir = tmp_path / "oracle"
    rater = OracleRater(task.bin_truth, OracleConfig(noise=0.3), seed=seed)
    info = TaskInfo(task.name, task.instruction, task.class_names(n))
    ErlVlmTrainer(cfg, env, rater, info, run_dir=run_dir, tensorboard=False, bin_truth=task.bin_truth).run()
    env.env.close()
    write_text_atomic(run_dir / "run.json", json.dumps({"task": TASK, "layout": task.layout, "loop.seed": seed}))

    run = read_run(run_dir)
    assert len(run.ratings) == 16 and all(r.frames is None for r in run.ratings)  # nothing stored
    assert all(r.sim_state is not None and r.sim_state.shape == (38,) for r in run.ratings)
    layout = draw_sheet(run, tmp_path / "sheet.png", image_size=size)
    assert layout.frame_sources == {"stored": 0, "re-rendered": 16, "none": 0}
    first_frames = 0
    for cell in layout.cells:
        r = cell.rating
        seen = env.frames[(seeds.episode_seed(seed, r.episode), r.steps[-1] + 1)]  # index i: step i + 1
        assert np.array_equal(cell.frame, seen), (r.query_id, r.episode, r.steps)
        first_frames += np.array_equal(seen, env.frames[(seeds.episode_seed(seed, r.episode), 0)])
    assert first_frames < len(layout.cells)  # the frames show the episodes going on
    _not_blank(layout.path)

    # Without the requests' states (a run from before they were kept): "no frame" cells.
    (run_dir / "requests.erlr").unlink()
    bare = draw_sheet(read_run(run_dir), tmp_path / "bare.png", image_size=size)
    assert bare.frame_sources == {"stored": 0, "re-rendered": 0, "none": 16}


def test_real_short_in_process_run(tmp_path: Path) -> None:
    """A real (tiny) run of ``python -m ros2_erl_vlm.train`` and its report (about 10 s)."""
    from ros2_erl_vlm.train import main as train_main

    run_dir = tmp_path / "real"
    code = train_main(["--task", TASK, "--steps", "1000", "--run-dir", str(run_dir), "--no-progress",
                       "--no-tensorboard", "--rater", "oracle", "--label-noise", "0.3",
                       "--set", "num_seed_steps=100", "--set", "num_unsup_steps=100",
                       "--set", "query_every=300", "--set", "queries_per_round=15",
                       "--set", "eval_every=500", "--set", "eval_episodes=1",
                       "--set", "sac.hidden_dim=32", "--set", "sac.hidden_layers=2",
                       "--set", "sac.batch_size=32", "--set", "reward.hidden_dim=32",
                       "--set", "reward.hidden_layers=2", "--set", "reward.epochs=2",
                       "--set", "replay_capacity=5000", "--set", "reset_updates=10"])
    assert code == 0
    files = make_report(run_dir)
    summary = json.loads(files.summary_json.read_text())
    assert summary["kind"] == "in-process" and summary["finished"] and summary["steps"] == 1000
    check_summary_matches(run_dir, summary)
    assert summary["ratings"]["with_truth"] == summary["ratings"]["rated"] > 0
    assert summary["reward_model"]["spearman_version"] == summary["reward_model"]["versions_trained"]
    _not_blank(files.report_png)
    _not_blank(files.contact_sheet_png)
    # The oracle rates without a camera: every cell is re-rendered from its request's MuJoCo state.
    assert "re-rendered" in files.frames and "without a frame" not in files.frames, files.frames


def test_offline_run_has_no_episodes_and_no_ratings(tmp_path: Path) -> None:
    """An offline training run (``python -m ros2_erl_vlm.offline.train``): train.csv rows are windows
    of gradient steps, eval.csv the simulated evaluation; its run.json names the data (the keys
    below are the ones the report reads: ``data``, ``seed``, ``steps``, ``eval.task``)."""
    run_dir = tmp_path / "offline"
    logger = MetricsLogger(run_dir, tensorboard=False)
    for step in (100, 200, 300):
        logger.log("train", step, {"actor_loss": 1.0 / step, "steps_per_s": 50.0})
    logger.log("eval", 300, {"success_rate": 0.3, "true_return": 12.0})
    logger.close()
    write_text_atomic(run_dir / "run.json", json.dumps({"data": "export.npz", "method": "bc", "seed": 2,
                                                        "steps": 300, "eval": {"task": TASK}}))
    files = make_report(run_dir)
    summary = json.loads(files.summary_json.read_text())
    assert summary["kind"] == "offline" and summary["task"] == TASK and summary["total_steps"] == 300
    assert summary["episodes"] is None and summary["steps"] == 300
    assert summary["eval"]["last_success_rate"] == 0.3 and summary["ratings"]["records"] == 0
    assert "gradient steps" in files.summary_txt.read_text()
    _not_blank(files.report_png)
