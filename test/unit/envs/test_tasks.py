"""Task files and their loader: the shipped tasks, layouts, the generic definition, class names,
oracle binning, strict errors."""

from __future__ import annotations

import itertools
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES
from ros2_erl_vlm.envs import tasks
from ros2_erl_vlm.envs.tasks import (
    METAWORLD_V3_TASKS,
    LayoutSpec,
    TaskSpec,
    all_tasks,
    available_tasks,
    generic_instruction,
    load_task,
)
from ros2_erl_vlm.paths import sim_dir

PAPER_TASKS = {
    "drawer-open-v3": ("open the drawer", 3),
    "sweep-into-v3": ("place the green cube so that it lies on the square hole", 2),
    "soccer-v3": ("place the soccer ball so that it lies inside the goal", 2),
}


@pytest.fixture
def tmp_sim(tmp_path: Path) -> Path:
    """A private copy of the shipped ``sim/tasks`` and ``sim/generic.yaml`` to corrupt."""
    shutil.copytree(sim_dir() / "tasks", tmp_path / "tasks")
    shutil.copy(sim_dir() / "generic.yaml", tmp_path / "generic.yaml")
    return tmp_path


def _edit(sim: Path, name: str, change) -> None:
    path = sim / "tasks" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_the_expected_tasks_are_shipped() -> None:
    assert {"drawer-open-v3", "sweep-into-v3", "soccer-v3", "reach-v3", "door-open-v3",
            "pick-place-v3"} <= set(available_tasks())


@pytest.mark.parametrize("name", available_tasks())
def test_shipped_task_loads(name: str) -> None:
    spec = load_task(name)
    assert isinstance(spec, TaskSpec)
    assert spec.name == name
    assert spec.image_size == 224
    assert spec.max_episode_steps == 500


@pytest.mark.parametrize("name", available_tasks())
def test_shipped_task_thresholds_increase_inside_0_1(name: str) -> None:
    spec = load_task(name)
    assert spec.num_classes in spec.class_counts
    for n in spec.class_counts:
        t = spec.oracle.thresholds(n)
        assert len(t) == n - 1, n
        assert t[0] > 0, n
        assert t[-1] < 1, n
        assert all(a < b for a, b in itertools.pairwise(t)), f"thresholds({n}) = {t} not increasing"


@pytest.mark.parametrize("name", sorted(PAPER_TASKS))
def test_paper_instructions_and_class_counts(name: str) -> None:
    spec = load_task(name)
    assert (spec.instruction, spec.num_classes) == PAPER_TASKS[name]
    assert spec.metaworld_env == name


def test_class_names_default() -> None:
    spec = load_task("drawer-open-v3")
    assert spec.class_names() == ("Bad", "Average", "Good")
    for n, names in DEFAULT_CLASS_NAMES.items():
        assert spec.class_names(n) == names


def test_class_names_beyond_five_classes_are_an_error() -> None:
    with pytest.raises(ValueError):
        load_task("drawer-open-v3").class_names(6)


def test_class_names_overridden_by_the_task_file(tmp_sim: Path) -> None:
    _edit(tmp_sim, "drawer-open-v3",
          lambda d: d.update(class_names={3: ["Closed", "Ajar", "Open"]}))
    custom = load_task("drawer-open-v3", sim_dir=tmp_sim)
    assert custom.class_names(3) == ("Closed", "Ajar", "Open")
    assert custom.class_names(2) == ("Bad", "Good")


def _drawer() -> TaskSpec:
    return load_task("drawer-open-v3")  # 3 classes: thresholds (0.25, 0.8)


def test_bin_truth_thresholds_belong_to_the_upper_class() -> None:
    spec = _drawer()
    t2, t3 = spec.oracle.thresholds(2), spec.oracle.thresholds(3)
    assert spec.bin_truth(0.0, False) == 0
    assert spec.bin_truth(math.nextafter(t3[0], 0), False, 3) == 0
    assert spec.bin_truth(t3[0], False, 3) == 1  # a threshold belongs to the upper class
    assert spec.bin_truth(t3[1], False, 3) == 2
    assert spec.bin_truth(t2[0] - 1e-6, False, 2) == 0
    assert spec.bin_truth(t2[0], False, 2) == 1


def test_bin_truth_success_is_always_the_top_class() -> None:
    spec = _drawer()
    assert spec.bin_truth(0.0, True, 3) == 2
    for n in range(2, 6):
        assert spec.bin_truth(0.0, True, n) == n - 1


def test_bin_truth_clips_progress_outside_0_1() -> None:
    spec = _drawer()
    assert spec.bin_truth(-3.0, False, 5) == 0
    assert spec.bin_truth(7.0, False, 5) == 4  # clipped


def test_bin_truth_rises_with_progress_over_every_class() -> None:
    spec = _drawer()
    for n in range(2, 6):
        labels = [spec.bin_truth(p, False, n) for p in (i / 100 for i in range(101))]
        assert labels == sorted(labels), n
        assert labels[0] == 0, n
        assert labels[-1] == n - 1, n


def test_bin_truth_of_nan_progress_is_an_error() -> None:
    with pytest.raises(ValueError, match="finite"):
        _drawer().bin_truth(float("nan"), False, 3)


def test_bin_truth_into_one_class_is_an_error() -> None:
    with pytest.raises(ValueError):
        _drawer().bin_truth(0.5, False, 1)


def test_unknown_task_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown task 'nope-v3'.*drawer-open-v3"):
        load_task("nope-v3")


def test_available_tasks_of_a_dir_without_tasks_is_empty(tmp_path: Path) -> None:
    assert available_tasks(tmp_path) == []


def test_available_tasks_of_other_dir_are_sorted(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "b.yaml").write_text("x: 1\n")
    (tmp_path / "tasks" / "a.yaml").write_text("x: 1\n")
    assert available_tasks(tmp_path) == ["a", "b"]


@pytest.mark.parametrize(("text", "match"), [
    ("name: [unclosed\n  camera: {", r"reach-v3\.yaml: not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
], ids=["invalid_yaml", "not_a_mapping"])
def test_corrupt_yaml(tmp_sim: Path, text: str, match: str) -> None:
    (tmp_sim / "tasks" / "reach-v3.yaml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_task("reach-v3", sim_dir=tmp_sim)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("instruction"), "instruction"),
        (lambda d: d.pop("camera"), "camera"),
        (lambda d: d["camera"].pop("lookat"), "camera.lookat"),
        (lambda d: d["oracle"]["thresholds"].pop(3), "oracle.thresholds"),  # num_classes' own
        (lambda d: d["oracle"].update(thresholds={}), "oracle.thresholds"),
        (lambda d: d["oracle"].update(progress="vibes"), "oracle.progress"),
        (lambda d: d["oracle"].update(grasp_lift={"min_lift": 0.02}), "oracle.grasp_lift"),
        (lambda d: d.update(layouts={"stock": {"hand_init_pos": [0, 0.6, 0.2]}}),
         "layouts.stock.hand_init_pos"),
        (lambda d: d.update(layouts={"Paper!": {}}), "layouts.Paper!"),
        (lambda d: d.update(layouts={"paper": {"hand_pos": [0, 0.6, 0.2]}}), "layouts.paper.hand_pos"),
        (lambda d: d.update(layouts={"paper": {"obj_init_pos": [0, 0.6]}}),
         "layouts.paper.obj_init_pos"),
        (lambda d: d.update(layouts={"paper": {"goal_observable": "no"}}),
         "layouts.paper.goal_observable"),
        (lambda d: d.update(layouts={"paper": {"success_radius": 0.0}}),
         "layouts.paper.success_radius"),
        (lambda d: d.update(num_classes="three"), "num_classes"),
        (lambda d: d.update(num_classes=6), "num_classes"),
        (lambda d: d.update(image_size=224.0), "image_size"),
        (lambda d: d.update(max_episode_steps=501), "max_episode_steps"),
        (lambda d: d["camera"].update(distance="far"), "camera.distance"),
        (lambda d: d["camera"].update(lookat=[0, 1]), "camera.lookat"),
        (lambda d: d.update(name="other-v3"), "name"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(class_names={3: ["a", "b"]}), "class_names.3"),
        (lambda d: d.update(appearance={"geom_rgba": {"objGeom": [2, 0, 0, 1]}}),
         "appearance.geom_rgba.objGeom"),
    ],
)
def test_missing_or_ill_typed_field(tmp_sim: Path, change, field: str) -> None:
    _edit(tmp_sim, "reach-v3", change)
    with pytest.raises(ValueError, match=rf"reach-v3\.yaml: field '{field}'"):
        load_task("reach-v3", sim_dir=tmp_sim)


@pytest.mark.parametrize(
    "bad",
    [[0.6, 0.5], [0.5, 0.5], [0.0, 0.5], [0.5, 1.0], [0.2], [0.1, 0.2, 0.3], [0.1, "x"]],
)
def test_bad_thresholds(tmp_sim: Path, bad: list) -> None:
    _edit(tmp_sim, "reach-v3", lambda d: d["oracle"]["thresholds"].update({3: bad}))
    with pytest.raises(ValueError, match=r"reach-v3\.yaml: field 'oracle\.thresholds\.3'"):
        load_task("reach-v3", sim_dir=tmp_sim)


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------

#: The reference code's layouts (paper notes, section 2).
PAPER_LAYOUTS = {
    "drawer-open-v3": LayoutSpec(hand_init_pos=(0.0, 0.75, 0.15), obj_init_pos=(0.0, 0.9, 0.0),
                                 goal_observable=False),
    "sweep-into-v3": LayoutSpec(hand_init_pos=(0.0, 0.53, 0.05), obj_init_pos=(0.0, 0.65, 0.02),
                                success_radius=0.06, goal_observable=False),
    "soccer-v3": LayoutSpec(hand_init_pos=(0.0, 0.56, 0.05), obj_init_pos=(0.0, 0.65, 0.03),
                            goal_pos=(0.0, 0.85, 0.0), goal_observable=False),
}


@pytest.mark.parametrize("name", sorted(PAPER_LAYOUTS))
def test_paper_tasks_have_the_reference_layout(name: str) -> None:
    spec = load_task(name, layout="paper")
    assert spec.layout == "paper"
    assert spec.layout_names == ("stock", "paper")
    assert replace(spec.layout_spec, description="") == PAPER_LAYOUTS[name]


@pytest.mark.parametrize("name", sorted(PAPER_LAYOUTS))
def test_the_paper_tasks_default_to_the_paper_layout(name: str) -> None:
    assert tasks.DEFAULT_LAYOUT == "paper"
    assert load_task(name).layout == "paper"
    stock = load_task(name, layout="stock")
    assert stock.layout_spec == LayoutSpec()  # MetaWorld's own, goal observable as before


def test_the_default_layout_is_one_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_task("reach-v3").layout == "stock"  # tasks without a paper layout keep stock
    assert load_task("window-open-v3").layout == "stock"
    monkeypatch.setattr(tasks, "DEFAULT_LAYOUT", "stock")
    assert load_task("drawer-open-v3").layout == "stock"


def test_with_layout_switches_and_keeps_the_rest() -> None:
    stock = load_task("soccer-v3", layout="stock")
    paper = stock.with_layout("paper")
    assert paper.layout == "paper"
    assert replace(paper, layout="stock") == stock
    assert stock.with_layout(None).layout == "paper"  # None: the default


def test_unknown_layout_names_task_layout_and_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"task 'reach-v3' has no layout 'paper'; its layouts: stock"):
        load_task("reach-v3", layout="paper")
    with pytest.raises(ValueError, match=r"'drawer-open-v3' has no layout 'papr'; its layouts: stock, paper"):
        load_task("drawer-open-v3").with_layout("papr")


def test_stock_layout_is_implicit(tmp_sim: Path) -> None:
    _edit(tmp_sim, "drawer-open-v3", lambda d: d.update(layouts={"paper": {"goal_observable": False}}))
    spec = load_task("drawer-open-v3", sim_dir=tmp_sim)
    assert spec.layout_names == ("stock", "paper")


# ---------------------------------------------------------------------------------------------
# Every MetaWorld v3 task: the generic definition
# ---------------------------------------------------------------------------------------------


def test_the_v3_task_list_matches_the_installed_metaworld() -> None:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert sorted(METAWORLD_V3_TASKS) == sorted(ALL_V3_ENVIRONMENTS)


def test_every_v3_task_loads() -> None:
    assert set(METAWORLD_V3_TASKS) <= set(all_tasks())
    for name in METAWORLD_V3_TASKS:
        spec = load_task(name)
        assert spec.metaworld_env == name
        assert spec.instruction, name
        assert spec.generic == (name not in available_tasks()), name
        assert spec.layout == ("paper" if name in PAPER_LAYOUTS else "stock"), name


def test_generic_task_defaults() -> None:
    spec = load_task("window-open-v3")
    assert spec.generic
    assert spec.source.endswith("generic.yaml")
    assert spec.instruction == "open the window"
    assert spec.num_classes == 3
    assert spec.class_names() == ("Bad", "Average", "Good")
    assert spec.oracle.progress == "dense_reward"
    assert spec.class_counts == (2, 3, 4, 5)
    assert spec.layout_names == ("stock",)


def test_hand_written_files_take_precedence() -> None:
    spec = load_task("drawer-open-v3")
    assert not spec.generic
    assert spec.source.endswith("drawer-open-v3.yaml")


@pytest.mark.parametrize(("name", "words"), [
    ("window-open-v3", "open the window"),
    ("door-unlock-v3", "unlock the door"),
    ("peg-insert-side-v3", "insert the peg from the side"),
    ("plate-slide-back-side-v3", "slide the plate back from the side"),
    ("button-press-topdown-wall-v3", "press the button from the top past the wall"),
])
def test_generic_instruction_from_the_name(name: str, words: str) -> None:
    assert generic_instruction(name) == words


def test_generic_instruction_table_wins_and_unknown_patterns_are_errors() -> None:
    assert generic_instruction("hammer-v3", {"hammer-v3": "hit the nail"}) == "hit the nail"
    with pytest.raises(ValueError, match="instructions"):
        generic_instruction("hammer-v3")


def test_generic_file_is_validated(tmp_sim: Path) -> None:
    path = tmp_sim / "generic.yaml"
    data = yaml.safe_load(path.read_text())
    data["camera"]["distance"] = "far"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"generic\.yaml: field 'camera\.distance'"):
        load_task("window-open-v3", sim_dir=tmp_sim)
    data["camera"]["distance"] = 1.0
    data["name"] = "window-open-v3"  # comes from the task name, not the file
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"generic\.yaml: field 'name'"):
        load_task("window-open-v3", sim_dir=tmp_sim)


@pytest.mark.parametrize(("typo", "suggested"), [
    ("windw-open-v3", "window-open-v3"),
    ("drawer-open", "drawer-open-v3"),
    ("pick-place-v2", "pick-place-v3"),
])
def test_unknown_task_suggests_the_closest(typo: str, suggested: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown task '{typo}' \(did you mean '{suggested}'"):
        load_task(typo)


# ---------------------------------------------------------------------------------------------
# Class counts a definition supports; pick-place's grasp-and-lift stages
# ---------------------------------------------------------------------------------------------


def test_pick_place_is_three_stages() -> None:
    spec = load_task("pick-place-v3")
    assert not spec.generic
    assert spec.oracle.progress == "grasp_lift"
    assert spec.oracle.grasp_lift is not None
    assert 0.02 <= spec.oracle.grasp_lift.min_lift <= 0.03
    assert spec.class_counts == (2, 3)
    assert spec.class_names() == ("Bad", "Average", "Good")
    stage = tasks.GRASP_LIFT_PROGRESS
    assert [spec.bin_truth(p, False, 3) for p in (0.0, stage)] == [0, 1]
    assert spec.bin_truth(0.0, True, 3) == 2
    assert [spec.bin_truth(p, False, 2) for p in (0.0, stage)] == [0, 0]


@pytest.mark.parametrize("call", [
    lambda s: s.class_names(4),
    lambda s: s.bin_truth(0.5, False, 4),
    lambda s: s.check_class_count(5),
])
def test_a_class_count_the_definition_lacks_is_an_error(call) -> None:
    with pytest.raises(ValueError, match=r"task 'pick-place-v3' cannot be rated with [45] classes: "
                                         r"its definition defines 2 or 3 classes"):
        call(load_task("pick-place-v3"))


def test_num_classes_needs_its_thresholds(tmp_sim: Path) -> None:
    _edit(tmp_sim, "pick-place-v3", lambda d: d.update(num_classes=4))
    with pytest.raises(ValueError, match=r"pick-place-v3\.yaml: field 'oracle\.thresholds' has no "
                                         r"thresholds for num_classes = 4"):
        load_task("pick-place-v3", sim_dir=tmp_sim)
