"""A ROS-free transform tree (tf's model): the end-effector pose from ``/tf`` and ``/tf_static``.

tf publishes each link of a robot's kinematic tree as a stamped transform ``parent -> child``
(the child frame's pose in the parent frame: a translation and a unit quaternion x, y, z, w);
``/tf_static`` carries the links that never move (their stamps say nothing about liveness).
:class:`TransformTree` keeps the newest transform of each child frame and composes the chain
``base -> ... -> frame`` through any intermediate frames (also when ``base`` is not an ancestor
of ``frame``: both are walked up to their common ancestor). Refused, naming the link: NaN/inf,
a quaternion whose squared norm is off 1 by more than :data:`QUAT_TOLERANCE` (tf2's own
``setTransform`` rule), a frame that is its own parent, a dynamic transform with a zero stamp or
stamped earlier than the link's previous one. A chain that cannot be completed names the frame
no transform leads to.

:class:`TfPoseTracker` turns a stream of tf messages into end-effector poses for the bridge's
stale-state checks: a pose counts as new only when **every** dynamic link of the chain has
advanced past the previous pose (the chain's oldest dynamic stamp moved on), so a frozen driver,
a relay re-publishing an old transform, or one link that stopped while others go on all look like
a silent ``PoseStamped`` topic. The pose's stamp is the chain's newest dynamic stamp.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Largest ``| |q|^2 - 1 |`` accepted (tf2's BufferCore::setTransform refuses beyond 10e-6).
QUAT_TOLERANCE = 1e-5
#: The longest chain walked (a cycle in the tree is refused, not followed forever).
MAX_DEPTH = 1000


class TransformError(ValueError):
    """A transform refused, or a chain that cannot be composed (the message names the link)."""


Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


def quat_multiply(a: Sequence[float], b: Sequence[float]) -> Quat:
    """The Hamilton product ``a * b`` of two quaternions x, y, z, w (``b`` applied first)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz)


def quat_rotate(q: Sequence[float], v: Sequence[float]) -> Vec3:
    """The vector ``v`` rotated by the unit quaternion ``q`` (x, y, z, w)."""
    qx, qy, qz, qw = q
    vx, vy, vz = v
    # t = 2 u x v; v' = v + w t + u x t (plain floats: this runs for every tf message)
    tx, ty, tz = 2.0 * (qy * vz - qz * vy), 2.0 * (qz * vx - qx * vz), 2.0 * (qx * vy - qy * vx)
    return (vx + qw * tx + (qy * tz - qz * ty),
            vy + qw * ty + (qz * tx - qx * tz),
            vz + qw * tz + (qx * ty - qy * tx))


@dataclass(frozen=True)
class Pose:
    """A rigid transform: ``translation`` (m) and unit ``rotation`` (x, y, z, w), plain floats."""

    translation: Vec3
    rotation: Quat

    @classmethod
    def of(cls, translation: Sequence[float], rotation: Sequence[float]) -> Pose:
        """From any three and four numbers (e.g. numpy arrays); the rotation is not checked."""
        t, q = tuple(float(v) for v in translation), tuple(float(v) for v in rotation)
        return cls(t, q)  # type: ignore[arg-type]

    @classmethod
    def identity(cls) -> Pose:
        """No motion."""
        return cls((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))

    def compose(self, other: Pose) -> Pose:
        """``self * other``: ``other`` expressed in ``self``'s parent frame."""
        r = quat_rotate(self.rotation, other.translation)
        t = self.translation
        return Pose((t[0] + r[0], t[1] + r[1], t[2] + r[2]), quat_multiply(self.rotation, other.rotation))

    def inverse(self) -> Pose:
        """The transform back."""
        x, y, z, w = self.rotation
        conj = (-x, -y, -z, w)
        r = quat_rotate(conj, self.translation)
        return Pose((-r[0], -r[1], -r[2]), conj)


@dataclass(frozen=True)
class Link:
    """One stored transform ``parent -> child`` (the child's pose in the parent frame)."""

    parent: str
    child: str
    pose: Pose
    stamp_s: float
    static: bool

    @property
    def name(self) -> str:
        """``parent -> child`` (for messages)."""
        return f"{self.parent} -> {self.child}"


@dataclass(frozen=True)
class ChainPose:
    """``frame``'s pose in ``base`` and what it was composed from."""

    base: str
    frame: str
    pose: Pose
    #: the links composed, in order from ``base`` towards ``frame``
    links: tuple[Link, ...]

    @property
    def dynamic_stamps(self) -> list[float]:
        """Stamps of the non-static links (s)."""
        return [link.stamp_s for link in self.links if not link.static]

    @property
    def newest_stamp_s(self) -> float | None:
        """The newest stamp among the non-static links (the pose's stamp); None: all static."""
        stamps = self.dynamic_stamps
        return max(stamps) if stamps else None

    @property
    def oldest_stamp_s(self) -> float | None:
        """The oldest stamp among the non-static links; None: all static."""
        stamps = self.dynamic_stamps
        return min(stamps) if stamps else None

    def age_s(self, now_s: float) -> float | None:
        """How old the chain is at ``now_s`` (same clock as the stamps): its oldest dynamic
        stamp's age; None when every link is static (a static chain does not age)."""
        oldest = self.oldest_stamp_s
        return None if oldest is None else now_s - oldest


def _checked_pose(translation: Sequence[float], rotation: Sequence[float], name: str) -> Pose:
    if len(translation) != 3 or len(rotation) != 4:
        raise TransformError(f"transform {name}: needs 3 translation and 4 rotation values, got "
                             f"{len(translation)} and {len(rotation)}")
    t, q = tuple(float(v) for v in translation), tuple(float(v) for v in rotation)
    if not all(math.isfinite(v) for v in t + q):
        raise TransformError(f"transform {name}: NaN/inf in {list(t)} {list(q)}")
    norm2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]
    if abs(norm2 - 1.0) > QUAT_TOLERANCE:
        raise TransformError(f"transform {name}: the quaternion {list(q)} is not unit (|q| = "
                             f"{math.sqrt(norm2):.6f})")
    n = math.sqrt(norm2)
    return Pose(t, (q[0] / n, q[1] / n, q[2] / n, q[3] / n))  # type: ignore[arg-type]


class TransformTree:
    """The newest transform of each child frame; chains composed on demand (see module docstring)."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}

    def set(self, parent: str, child: str, translation: Sequence[float], rotation: Sequence[float],
            stamp_s: float, static: bool = False) -> Link:
        """Store ``parent -> child`` (replacing the child's previous transform); TransformError
        for a bad one (see the module docstring), the tree unchanged then."""
        name = f"{parent} -> {child}"
        if not parent or not child:
            raise TransformError(f"transform {name!r}: empty frame name")
        if parent == child:
            raise TransformError(f"transform {name}: a frame cannot be its own parent")
        pose = _checked_pose(translation, rotation, name)
        if not math.isfinite(stamp_s):
            raise TransformError(f"transform {name}: stamp {stamp_s!r} is not finite")
        if not static:
            if stamp_s == 0.0:
                raise TransformError(f"transform {name}: zero stamp (an unstamped driver, or a "
                                     f"clock that is not running)")
            old = self.links.get(child)
            if old is not None and not old.static and old.parent == parent and stamp_s < old.stamp_s:
                raise TransformError(f"transform {name}: stamped {old.stamp_s - stamp_s:.3f} s "
                                     f"before the previous one")
        link = Link(parent, child, pose, float(stamp_s), bool(static))
        self.links[child] = link
        return link

    def _up(self, frame: str) -> list[Link]:
        """The links from ``frame`` up to its root (``frame``'s own link first)."""
        out: list[Link] = []
        seen = {frame}
        while frame in self.links:
            link = self.links[frame]
            out.append(link)
            frame = link.parent
            if frame in seen or len(out) > MAX_DEPTH:
                raise TransformError(f"the transforms form a cycle through {frame!r}")
            seen.add(frame)
        return out

    def lookup(self, base: str, frame: str) -> ChainPose:
        """``frame``'s pose in ``base``, through every intermediate frame; TransformError names
        the missing link when the two frames are not connected."""
        if base == frame:
            return ChainPose(base, frame, Pose.identity(), ())
        up_frame, up_base = self._up(frame), self._up(base)
        roots_f = [frame] + [link.parent for link in up_frame]
        roots_b = [base] + [link.parent for link in up_base]
        on_base = set(roots_b)
        common = next((f for f in roots_f if f in on_base), None)
        if common is None:
            known = ", ".join(sorted(set(self.links) | {lk.parent for lk in self.links.values()}))
            raise TransformError(
                f"no transform chain {base} -> {frame}: {frame}'s chain ends at {roots_f[-1]!r} and "
                f"{base}'s at {roots_b[-1]!r}; a transform with child {roots_f[-1]!r} (or "
                f"{roots_b[-1]!r}) is missing (known frames: {known or 'none'})")
        to_frame = up_frame[:roots_f.index(common)][::-1]  # common -> ... -> frame
        to_base = up_base[:roots_b.index(common)][::-1]    # common -> ... -> base
        pose_f, pose_b = Pose.identity(), Pose.identity()
        for link in to_frame:
            pose_f = pose_f.compose(link.pose)
        for link in to_base:
            pose_b = pose_b.compose(link.pose)
        return ChainPose(base, frame, pose_b.inverse().compose(pose_f),
                         tuple(to_base[::-1]) + tuple(to_frame))


@dataclass(frozen=True)
class TfEntry:
    """One transform as it arrived (a geometry_msgs/TransformStamped, ROS-free)."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    stamp_s: float
    static: bool = False


@dataclass
class TfUpdate:
    """What one tf message meant for the end-effector pose."""

    #: a new pose (every dynamic link of the chain advanced), else None
    pose: ChainPose | None = None
    #: transforms refused (their text), on the chain or not
    refused: list[str] = field(default_factory=list)
    #: why the chain is not usable now ("" when it is): a refused link on it, a missing link, no
    #: dynamic link at all
    problem: str = ""


class TfPoseTracker:
    """``frame``'s pose in ``base`` from tf messages, for the stale-state checks (module docstring).

    Args:
        base: the arm's base frame.
        frame: the end-effector frame.
    """

    def __init__(self, base: str, frame: str) -> None:
        if not base or not frame or base == frame:
            raise ValueError(f"the ee pose from tf needs two different frames, got {base!r} and {frame!r}")
        self.base, self.frame = base, frame
        self.tree = TransformTree()
        self.last: ChainPose | None = None
        #: the frames of the last complete chain (a refused transform of one of them stops the arm)
        self.chain_frames: set[str] = set()

    def update(self, entries: Iterable[TfEntry]) -> TfUpdate:
        """Store a message's transforms and say whether the chain gave a new pose."""
        out = TfUpdate()
        for e in entries:
            try:
                self.tree.set(e.parent, e.child, e.translation, e.rotation, e.stamp_s, e.static)
            except TransformError as exc:
                out.refused.append(str(exc))
                if not self.chain_frames or e.child in self.chain_frames:
                    out.problem = str(exc)
        if out.problem:
            return out
        try:
            chain = self.tree.lookup(self.base, self.frame)
        except TransformError as exc:
            out.problem = str(exc)
            return out
        self.chain_frames = {link.child for link in chain.links}
        oldest = chain.oldest_stamp_s
        if oldest is None:
            out.problem = (f"every transform of {self.base} -> {self.frame} is static: nothing shows "
                           f"that the arm's state is live")
            return out
        previous = None if self.last is None else self.last.oldest_stamp_s
        if previous is None or oldest > previous:
            self.last = chain
            out.pose = chain
        return out
