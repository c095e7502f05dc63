"""The transform tree: chains composed through intermediate frames (hand-computed), stamps and
age, refused transforms and missing links named; the tracker's "every dynamic link advanced" rule."""

import math

import numpy as np
import pytest

from ros2_erl_vlm.core.safety.transforms import (
    Pose,
    TfEntry,
    TfPoseTracker,
    TransformError,
    TransformTree,
    quat_multiply,
)

S = math.sqrt(0.5)
ID = (0.0, 0.0, 0.0, 1.0)
RZ90 = (0.0, 0.0, S, S)  # 90 degrees about z
RX90 = (S, 0.0, 0.0, S)  # 90 degrees about x


def close(a, b, tol=1e-12):
    return np.allclose(np.asarray(a), np.asarray(b), atol=tol)


def same_rotation(q, r):
    return close(q, r) or close(q, -np.asarray(r))


def test_one_link_is_its_transform():
    tree = TransformTree()
    tree.set("world", "a", (1.0, 2.0, 3.0), ID, 5.0)
    c = tree.lookup("world", "a")
    assert close(c.pose.translation, [1, 2, 3]) and same_rotation(c.pose.rotation, ID)
    assert tree.lookup("world", "world").links == ()


def test_rotation_moves_the_next_link():
    # b sits 1 m along a's x axis; a is 1 m along world x, turned 90 degrees about z: b at (1, 1, 0)
    tree = TransformTree()
    tree.set("world", "a", (1.0, 0.0, 0.0), RZ90, 1.0)
    tree.set("a", "b", (1.0, 0.0, 0.0), ID, 1.0)
    c = tree.lookup("world", "b")
    assert close(c.pose.translation, [1, 1, 0]) and same_rotation(c.pose.rotation, RZ90)


def test_three_links_through_intermediate_frames():
    # world -> a: up 1 m, Rz90; a -> b: 1 m along a's x, Rx90; b -> c: 1 m along b's y.
    # b's origin: (0,0,1) + Rz90 (1,0,0) = (0,1,1); Rx90 takes b's y to z, Rz90 keeps z: c = (0,1,2).
    # Rz90 * Rx90 = (0.5, 0.5, 0.5, 0.5): the 120 degree turn x->y, y->z, z->x.
    tree = TransformTree()
    tree.set("world", "a", (0.0, 0.0, 1.0), RZ90, 1.0)
    tree.set("a", "b", (1.0, 0.0, 0.0), RX90, 1.0, static=True)
    tree.set("b", "c", (0.0, 1.0, 0.0), ID, 1.0)
    c = tree.lookup("world", "c")
    assert close(c.pose.translation, [0, 1, 2])
    assert same_rotation(c.pose.rotation, [0.5, 0.5, 0.5, 0.5])
    assert [link.child for link in c.links] == ["a", "b", "c"]
    # the other way round: -R^-1 t, with R^-1 taking y->x, z->y: (-1, -2, 0)
    back = tree.lookup("c", "world")
    assert close(back.pose.translation, [-1, -2, 0])
    assert same_rotation(back.pose.rotation, [-0.5, -0.5, -0.5, 0.5])
    # and from an intermediate frame: c in a = (1,0,0) + Rx90 (0,1,0) = (1, 0, 1)
    assert close(tree.lookup("a", "c").pose.translation, [1, 0, 1])


def test_base_that_is_not_an_ancestor():
    # both hang off world: b in a = Rz90^-1 ((0,2,0) - (1,0,0)) = Rz(-90) (-1,2,0) = (2, 1, 0)
    tree = TransformTree()
    tree.set("world", "a", (1.0, 0.0, 0.0), RZ90, 1.0)
    tree.set("world", "b", (0.0, 2.0, 0.0), ID, 1.0)
    c = tree.lookup("a", "b")
    assert close(c.pose.translation, [2, 1, 0])
    assert same_rotation(c.pose.rotation, [0.0, 0.0, -S, S])


def test_pose_algebra():
    p = Pose.of(np.array([0.3, -0.2, 1.0]), np.array([0.5, 0.5, 0.5, 0.5]))
    ident = p.compose(p.inverse())
    assert close(ident.translation, [0, 0, 0]) and same_rotation(ident.rotation, ID)
    assert same_rotation(quat_multiply(RZ90, RZ90), [0, 0, 1, 0])  # 180 about z


def test_stamps_and_age_ignore_static_links():
    tree = TransformTree()
    tree.set("world", "a", (0, 0, 0), ID, 10.0)
    tree.set("a", "b", (0, 0, 0), ID, 0.0, static=True)  # a static link may be unstamped
    tree.set("b", "c", (0, 0, 0), ID, 12.0)
    c = tree.lookup("world", "c")
    assert (c.newest_stamp_s, c.oldest_stamp_s, c.age_s(15.0)) == (12.0, 10.0, 5.0)
    static = TransformTree()
    static.set("world", "a", (0, 0, 0), ID, 3.0, static=True)
    s = static.lookup("world", "a")
    assert s.newest_stamp_s is None and s.age_s(100.0) is None


@pytest.mark.parametrize("args, words", [
    (("world", "a", (math.nan, 0, 0), ID, 1.0), ["world -> a", "NaN"]),
    (("world", "a", (0, 0, 0), (0, 0, 0, math.inf), 1.0), ["world -> a", "NaN/inf"]),
    (("world", "a", (0, 0, 0), (0, 0, 0, 2.0), 1.0), ["world -> a", "not unit"]),
    (("world", "a", (0, 0, 0), (0, 0, 0, 0), 1.0), ["not unit"]),
    (("world", "a", (0, 0), ID, 1.0), ["3 translation"]),
    (("world", "a", (0, 0, 0), ID, 0.0), ["world -> a", "zero stamp"]),
    (("a", "a", (0, 0, 0), ID, 1.0), ["own parent"]),
    (("", "a", (0, 0, 0), ID, 1.0), ["empty frame"]),
])
def test_bad_transforms_are_refused(args, words):
    tree = TransformTree()
    with pytest.raises(TransformError) as err:
        tree.set(*args)
    assert all(w in str(err.value) for w in words), str(err.value)
    assert tree.links == {}


def test_near_unit_quaternion_is_normalised_and_stamps_may_not_go_back():
    tree = TransformTree()
    link = tree.set("world", "a", (0, 0, 0), (0, 0, 0, 1.000004), 2.0)
    assert link.pose.rotation[3] == 1.0
    with pytest.raises(TransformError, match="stamped 1.000 s before"):
        tree.set("world", "a", (0, 0, 0), ID, 1.0)
    assert tree.links["a"].stamp_s == 2.0  # the newer one is kept


def test_a_missing_link_is_named():
    tree = TransformTree()
    tree.set("world", "a", (0, 0, 0), ID, 1.0)
    tree.set("b", "c", (0, 0, 0), ID, 1.0)  # nothing connects a and b
    with pytest.raises(TransformError) as err:
        tree.lookup("world", "c")
    assert "no transform chain world -> c" in str(err.value) and "'b'" in str(err.value)
    with pytest.raises(TransformError, match="'tool0'"):
        tree.lookup("world", "tool0")


def test_a_cycle_is_refused():
    tree = TransformTree()
    tree.set("a", "b", (0, 0, 0), ID, 1.0)
    tree.set("b", "a", (0, 0, 0), ID, 1.0)
    with pytest.raises(TransformError, match="cycle"):
        tree.lookup("world", "a")


def entry(parent, child, stamp, x=0.0, static=False, rotation=ID):
    return TfEntry(parent, child, (x, 0.0, 0.0), rotation, stamp, static)


def test_tracker_needs_every_dynamic_link_to_advance():
    tr = TfPoseTracker("world", "hand")
    up = tr.update([entry("wrist", "hand", 0.0, 0.1, static=True)])
    assert up.pose is None and "'wrist'" in up.problem  # world -> wrist missing
    up = tr.update([entry("world", "base", 1.0, 1.0), entry("base", "wrist", 1.0, 0.5)])
    assert up.pose is not None and close(up.pose.pose.translation, [1.6, 0, 0])
    assert up.pose.newest_stamp_s == 1.0 and not up.problem
    # the same stamps again (a relay re-publishing): no new pose
    assert tr.update([entry("world", "base", 1.0, 1.0), entry("base", "wrist", 1.0, 0.5)]).pose is None
    # one link advances, the other is frozen: no new pose
    assert tr.update([entry("world", "base", 2.0, 1.0)]).pose is None
    assert tr.update([entry("world", "base", 3.0, 1.0)]).pose is None
    # the frozen link moves on: a pose, stamped with the newest
    up = tr.update([entry("base", "wrist", 2.5, 0.7)])
    assert up.pose is not None and up.pose.newest_stamp_s == 3.0 and up.pose.oldest_stamp_s == 2.5
    assert close(up.pose.pose.translation, [1.8, 0, 0])
    # another robot's transforms: no pose, no problem
    assert tr.update([entry("world", "cup", 9.0)]) == type(up)()


def test_tracker_problems():
    tr = TfPoseTracker("world", "hand")
    assert "static" in tr.update([entry("world", "hand", 0.0, static=True)]).problem
    tr = TfPoseTracker("world", "hand")
    assert tr.update([entry("world", "hand", 1.0)]).pose is not None
    # a bad transform elsewhere is refused but does not stop the arm
    up = tr.update([entry("world", "cup", 1.0, rotation=(0, 0, 0, 3.0)), entry("world", "hand", 2.0)])
    assert up.refused and not up.problem and up.pose is not None
    # a bad or backwards transform on the chain is a problem
    up = tr.update([entry("world", "hand", 3.0, x=math.nan)])
    assert up.pose is None and "NaN" in up.problem and "world -> hand" in up.problem
    assert "before the previous" in tr.update([entry("world", "hand", 1.5)]).problem
    with pytest.raises(ValueError, match="two different frames"):
        TfPoseTracker("world", "world")
