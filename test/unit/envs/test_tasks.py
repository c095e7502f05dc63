"""Task files and their loader: the shipped tasks, class names, oracle binning, strict errors."""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import pytest
import yaml

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES
from ros2_erl_vlm.envs.tasks import TaskSpec, available_tasks, load_task
from ros2_erl_vlm.paths import sim_dir

PAPER_TASKS = {
    "drawer-open-v3": ("open the drawer", 3),
    "sweep-into-v3": ("place the green cube so that it lies on the square hole", 2),
    "soccer-v3": ("place the soccer ball so that it lies inside the goal", 2),
}


@pytest.fixture
def tmp_sim(tmp_path: Path) -> Path:
    """A private copy of the shipped ``sim/tasks`` to corrupt."""
    shutil.copytree(sim_dir() / "tasks", tmp_path / "tasks")
    return tmp_path


def _edit(sim: Path, name: str, change) -> None:
    path = sim / "tasks" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_the_expected_tasks_are_shipped() -> None:
    assert {"drawer-open-v3", "sweep-into-v3", "soccer-v3", "reach-v3", "door-open-v3"} <= set(available_tasks())


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
    for n in range(2, 6):
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
        (lambda d: d["oracle"]["thresholds"].pop(4), "oracle.thresholds.4"),
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
