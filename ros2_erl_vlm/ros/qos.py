"""Topic names and QoS profiles of the node graph (one place; docs/architecture.md lists them).

Names are relative, so every topic lives under the nodes' namespace (several robots side by side),
except ``/clock``, which ROS time reads from the root. Rules (DESIGN.md): images use sensor-data
QoS (best effort, shallow); step data, ratings and model updates are reliable; the latest reward
model is transient-local so a (re)started agent gets it; nothing that commands an arm is
transient-local. Every history is bounded.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# -- topic and service names ---------------------------------------------------------------------
OBSERVATION = "observation"
ACTION = "action"
CAMERA_IMAGE = "camera/image_raw"
#: image_transport's name of the compressed sibling (realsense2_camera, usb_cam publish it).
CAMERA_IMAGE_COMPRESSED = "camera/image_raw/compressed"
FRAMES = "camera/frames"
RATING_REQUESTS = "rating_requests"
RATING_REQUESTS_FRAMED = "rating_requests/framed"
RATINGS = "ratings"
REWARD_MODEL = "reward_model"
EPISODE_SUMMARY = "episode_summary"
RATING_MARKERS = "rating_markers"
CLOCK = "/clock"
RESET_SERVICE = "reset"


def _reliable(depth: int, durability: DurabilityPolicy = DurabilityPolicy.VOLATILE) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=durability)


#: Per-step observations: reliable; deep enough to ride out a busy subscriber for a few seconds.
OBSERVATION_QOS = _reliable(1000)
#: Actions command the robot: reliable, volatile (never replayed to a late joiner), shallow.
ACTION_QOS = _reliable(10)
#: Camera images: sensor data (best effort, depth 5).
IMAGE_QOS = qos_profile_sensor_data
#: Step frames (camera/frames): reliable, a few seconds deep, as image reward models store every
#: step's frame (best-effort viewers still match a reliable publisher).
FRAMES_QOS = _reliable(100)
#: Rating requests and ratings: reliable, one round's worth and more.
RATING_QOS = _reliable(500)
#: Reward model updates: reliable, the latest one kept for late joiners.
REWARD_MODEL_QOS = _reliable(1, DurabilityPolicy.TRANSIENT_LOCAL)
#: Episode summaries: reliable.
SUMMARY_QOS = _reliable(100)
#: /clock: reliable publisher, latest only (best-effort subscribers are compatible).
CLOCK_QOS = _reliable(1)
#: Rated-point markers for rviz: reliable, the latest array kept for a viewer that joins later.
MARKERS_QOS = _reliable(1, DurabilityPolicy.TRANSIENT_LOCAL)

# -- the real-arm side (arm_bridge; the arm's own topic names come from its arm config) ----------
ESTOP = "estop"
RESET_ESTOP_SERVICE = "reset_estop"
SAFETY_STATUS = "safety_status"
SAFETY_MARKERS = "safety_markers"
#: Robot state (end-effector pose, joint states, object poses): best effort, as drivers publish it
#: (a reliable subscriber gets nothing from Franka's best-effort topics; best effort takes both).
ROBOT_STATE_QOS = qos_profile_sensor_data
#: Arm commands (twists, pose targets, gripper): reliable, volatile, latest only.
ARM_COMMAND_QOS = _reliable(1)
#: A robot's latched state (UR's robot_program_running): reliable, transient local, latest only.
LATCHED_STATE_QOS = _reliable(1, DurabilityPolicy.TRANSIENT_LOCAL)
#: E-stop and enable heartbeats: reliable, volatile.
SAFETY_INPUT_QOS = _reliable(10)
#: The bridge's safety status (JSON text) and its rviz markers: the latest kept for a late viewer.
SAFETY_STATUS_QOS = _reliable(1, DurabilityPolicy.TRANSIENT_LOCAL)
