"""The node graph description (``config/graph.yaml``) and what both starters derive from it.

``launch/train_sim.launch.py`` (ROS installed) and :mod:`ros2_erl_vlm.runner` (no ROS install)
read the same file through this module: the nodes, their layers, the launch arguments and how each
argument becomes node parameters. It also checks a ROS params file against every node's declared
parameters without starting anything (ROS-free; rclpy is not imported).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.settings import flatten, parse_value, read_settings_file
from ros2_erl_vlm.paths import config_dir
from ros2_erl_vlm.ros.node_params import NODE_PARAMS, all_param_names, loop_config
from ros2_erl_vlm.ros.params import ParamError, ParamSpec, is_builtin

GRAPH_FILE = "graph.yaml"
#: Rating backends that read simulator truth (refused on an arm).
TRUTH_RATERS = ("oracle", "simulated_vlm")
LAYERS = ("top", "bottom_sim", "bottom_real")


class GraphError(ValueError):
    """A bad graph description, argument or params file (the message says which)."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph."""

    name: str
    layer: str
    sim_time: bool = True
    ends_graph: bool = False
    #: started only when this argument is set (non-empty, not false) / not set (None: always)
    when: str | None = None
    unless: str | None = None

    @property
    def module(self) -> str:
        """The Python module with the node's ``main``."""
        return f"ros2_erl_vlm.nodes.{self.name}"

    @property
    def params(self) -> tuple[ParamSpec, ...]:
        """The node's declared parameters."""
        return NODE_PARAMS[self.name]


@dataclass(frozen=True)
class Argument:
    """A launch argument / runner option."""

    name: str
    default: str
    description: str
    parameter: str | None = None
    special: str | None = None
    nodes: tuple[str, ...] | None = None


@dataclass
class Graph:
    """The parsed ``config/graph.yaml``."""

    nodes: list[NodeSpec]
    arguments: dict[str, Argument]
    params_file: Path
    source: Path = field(default_factory=Path)
    #: use_sim:=false: parameters replacing the params file's on every node declaring them
    real_arm_parameters: dict[str, Any] = field(default_factory=dict)
    #: use_sim:=false fake:=true without arm_config: this arm config
    fake_arm_config: Path | None = None
    #: deploying (checkpoint set): parameters replacing the params file's on every node declaring them
    deploy_parameters: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"no node {name!r} in {self.source}")

    def layer(self, layer: str) -> list[NodeSpec]:
        """The nodes of one layer."""
        return [n for n in self.nodes if n.layer == layer]

    def started(self, values: dict[str, str]) -> list[NodeSpec]:
        """The nodes a run with these (resolved) argument values starts: the shared layer, the
        robot side ``use_sim`` picks, minus nodes whose ``when`` argument is false."""
        layers = ("top", "bottom_sim" if is_sim(values) else "bottom_real")
        return [n for n in self.nodes if n.layer in layers
                and (n.when is None or is_set(values.get(n.when)))
                and (n.unless is None or not is_set(values.get(n.unless)))]

    def defaults(self) -> dict[str, str]:
        """Every argument's default value."""
        return {name: a.default for name, a in self.arguments.items()}

    def resolve(self, values: dict[str, str]) -> dict[str, str]:
        """Argument values (defaults filled in, unknown names rejected, ``run_dir`` and
        ``params_file`` made concrete absolute paths)."""
        unknown = sorted(set(values) - set(self.arguments))
        if unknown:
            raise GraphError(f"unknown argument {unknown[0]!r} (known: {', '.join(self.arguments)})")
        out = {**self.defaults(), **{k: str(v) for k, v in values.items()}}
        if not out.get("params_file"):
            out["params_file"] = str(self.params_file)
        out["params_file"] = str(Path(out["params_file"]).expanduser().resolve())
        if not out.get("run_dir"):
            shared = _node_values(out["params_file"], "sac_agent")
            out["run_dir"] = default_run_dir(out.get("task") or str(shared["task"]),
                                             out.get("seed") or str(shared["seed"]))
        out["run_dir"] = str(Path(out["run_dir"]).expanduser().resolve())
        if is_deploy(out):
            ckpt = Path(out["checkpoint"]).expanduser().resolve()
            if not ckpt.is_file():
                raise GraphError(f"argument 'checkpoint': {ckpt} does not exist (the training run's "
                                 f"<run_dir>/sac_agent/checkpoint.pt)")
            out["checkpoint"] = str(ckpt)
        if not is_sim(out):
            self._resolve_real_arm(out)
        elif not out.get("use_sim_time"):
            # Sim time only when the simulator publishes /clock (lock-step with publish_clock).
            sim = _node_values(out["params_file"], "sim_bridge")
            mode = out.get("mode") or sim["mode"]
            out["use_sim_time"] = str(mode == "lockstep" and bool(sim["publish_clock"])).lower()
        ns = out.get("namespace", "")
        if ns and not re.fullmatch(r"/?[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*", ns):
            raise GraphError(f"argument 'namespace': {ns!r} is not a valid ROS namespace")
        return out

    def _resolve_real_arm(self, out: dict[str, str]) -> None:
        """use_sim:=false: the system clock only, and an arm config (the fake's with fake:=true)."""
        if parse_bool(out.get("use_sim_time") or "false", "use_sim_time"):
            raise GraphError("use_sim:=false refuses use_sim_time:=true: a real arm runs on the "
                             "system clock (Servo drops or never expires commands stamped on sim time)")
        out["use_sim_time"] = "false"
        if not out.get("arm_config"):
            if not parse_bool(out.get("fake") or "false", "fake") or self.fake_arm_config is None:
                raise GraphError("use_sim:=false needs arm_config:=<file> naming the arm's topics, "
                                 "workspace box and home pose (examples in config/arms/, fields in "
                                 "docs/real_arm.md), or fake:=true for the fake arm")
            out["arm_config"] = str(self.fake_arm_config)
        out["arm_config"] = str(Path(out["arm_config"]).expanduser().resolve())

    def node_overrides(self, values: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Typed parameter overrides per node from resolved argument values."""
        out: dict[str, dict[str, Any]] = {n.name: {} for n in self.nodes}
        replaced = {**(self.real_arm_parameters if not is_sim(values) else {}),
                    **(self.deploy_parameters if is_deploy(values) else {})}
        for node in self.nodes:
            declared = {s.name for s in node.params}
            out[node.name].update({k: v for k, v in replaced.items() if k in declared})
        for arg in self.arguments.values():
            if arg.parameter is None:
                continue
            raw = values.get(arg.name, "")
            if raw == "":
                continue
            for node in self.nodes:
                if arg.nodes is not None and node.name not in arg.nodes:
                    continue
                spec = {s.name: s for s in node.params}.get(arg.parameter)
                if spec is None:
                    continue
                out[node.name][arg.parameter] = typed_value(spec, raw, arg.name)
        use_sim_time = parse_bool(values.get("use_sim_time") or "false", "use_sim_time")
        for node in self.nodes:
            if node.sim_time and use_sim_time:
                out[node.name]["use_sim_time"] = True
        return out


def is_set(raw: str | None) -> bool:
    """Whether an argument is set: non-empty and not false/0/no/off."""
    return str(raw or "").strip().lower() not in ("", "false", "0", "no", "off")


def is_deploy(values: dict[str, str]) -> bool:
    """Whether the run deploys a checkpoint (no learning)."""
    return is_set(values.get("checkpoint"))


def is_sim(values: dict[str, str]) -> bool:
    """Whether the run's robot side is the simulator (``use_sim``, default true)."""
    return parse_bool(values.get("use_sim") or "true", "use_sim")


def _node_values(params_file: str, node: str) -> dict[str, Any]:
    """A node's declared defaults overlaid with what the params file gives it (an unreadable
    file counts as empty here: :func:`check_params` reports it)."""
    given: dict[str, Any] = {}
    with contextlib.suppress(GraphError):
        given = node_params_from_file(read_params_file(params_file), f"/{node}")
    return {**{s.name: s.default for s in NODE_PARAMS[node]}, **given}


def parse_bool(raw: str, name: str) -> bool:
    """``true``/``false`` (any case, also 1/0, yes/no)."""
    v = str(raw).strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off", ""):
        return False
    raise GraphError(f"argument '{name}': expected true or false, got {raw!r}")


def typed_value(spec: ParamSpec, raw: str, arg: str) -> Any:
    """The argument string as the parameter's type, validated."""
    value = raw if spec.kind == "str" else parse_value(raw)
    try:
        return spec.check(value)
    except ParamError as exc:
        raise GraphError(f"argument '{arg}': {exc}") from exc


def default_run_dir(task: str, seed: str) -> str:
    """``runs/<task>-graph-s<seed>-<time>`` under the working directory."""
    return str(Path("runs") / f"{task}-graph-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}")


def _parameter_limits(nodes: list[NodeSpec], parameter: str | None,
                      only: tuple[str, ...] | None) -> str:
    """The declared range or choices of ``parameter`` (from the first node declaring it)."""
    for node in nodes:
        if only is not None and node.name not in only:
            continue
        spec = {s.name: s for s in node.params}.get(parameter or "")
        if spec is not None:
            return spec.constraint_text()
    return ""


def load_graph(path: str | Path | None = None) -> Graph:
    """Parse ``config/graph.yaml`` (or ``path``)."""
    src = Path(path) if path is not None else config_dir() / GRAPH_FILE
    data = read_settings_file(src, "graph description", GraphError, empty_ok=False)
    nodes = []
    for raw in data.get("nodes") or []:
        name = raw.get("name")
        if name not in NODE_PARAMS:
            raise GraphError(f"{src}: unknown node {name!r} (known: {', '.join(NODE_PARAMS)})")
        layer = raw.get("layer", "top")
        if layer not in LAYERS:
            raise GraphError(f"{src}: node {name}: layer must be one of {LAYERS}")
        nodes.append(NodeSpec(name, layer, bool(raw.get("sim_time", True)),
                              bool(raw.get("ends_graph", False)), raw.get("when"), raw.get("unless")))
    if not nodes:
        raise GraphError(f"{src}: no nodes")
    args = {}
    for name, raw in (data.get("arguments") or {}).items():
        nodes_for = tuple(raw.get("nodes") or ()) or None
        parameter = raw.get("parameter")
        description = str(raw.get("description", ""))
        limits = _parameter_limits(nodes, parameter, nodes_for)
        if limits:
            description = f"{description}; {limits}"
        args[name] = Argument(name, str(raw.get("default", "")), description, parameter,
                              raw.get("special"), nodes_for)
    for node in nodes:
        for key in ("when", "unless"):
            arg = getattr(node, key)
            if arg is not None and arg not in args:
                raise GraphError(f"{src}: node {node.name}: '{key}' names no argument ({arg!r})")
    pf = Path(str(data.get("params_file", "train_sim.yaml")))
    real = data.get("real_arm") or {}
    fake = real.get("fake_arm_config")
    return Graph(nodes, args, pf if pf.is_absolute() else src.parent / pf, src,
                 dict(real.get("parameters") or {}),
                 None if not fake else (Path(fake) if Path(fake).is_absolute() else src.parent / fake),
                 dict((data.get("deploy") or {}).get("parameters") or {}))


# -- params files ----------------------------------------------------------------------------------
def _pattern(key: str) -> re.Pattern[str]:
    """Regex of a params-file node key (``/**``, ``/**/name``, ``/ns/name``, ``name``, ``*``)."""
    k = key if key.startswith("/") else "/" + key
    out, i = "", 0
    while i < len(k):
        if k.startswith("/**", i):
            out += "(/[^/]+)*"
            i += 3
        elif k[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(k[i])
            i += 1
    return re.compile(out + r"\Z")


def read_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{node key: {parameter: value}}`` of a ROS params file (nested names flattened)."""
    p = Path(path)
    data = read_settings_file(p, "params file", GraphError, empty_ok=False,
                              expected="a mapping of node names")
    out = {}
    for key, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get("ros__parameters"), dict):
            raise GraphError(f"params file {p}: section {key!r} needs a 'ros__parameters' mapping")
        out[str(key)] = flatten(body["ros__parameters"])
    return out


def node_params_from_file(sections: dict[str, dict[str, Any]], fqn: str) -> dict[str, Any]:
    """The parameters a node with fully qualified name ``fqn`` gets from the sections (in file
    order; later sections win, as in rcl)."""
    out: dict[str, Any] = {}
    for key, values in sections.items():
        if _pattern(key).match(fqn):
            out.update(values)
    return out


def fqn(namespace: str, name: str) -> str:
    """``/ns/name`` (or ``/name``)."""
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


def _check_task(node: str, params: dict[str, Any]) -> None:
    """GraphError when the node's task (or its layout) is unknown: the message names the closest
    known tasks (or the task's layouts)."""
    from ros2_erl_vlm.envs.tasks import load_task

    try:
        load_task(str(params["task"]), layout=str(params.get("layout") or "") or None)
    except ValueError as exc:
        raise GraphError(f"{node}: parameter 'task': {exc}") from exc


def _check_rater(params: dict[str, Any]) -> None:
    """GraphError when the rater's settings (``rater.config_file`` included) would not build: a
    bad option, a model that is not on this machine, a missing API-key variable, a missing log."""
    from ros2_erl_vlm.raters.factory import check_rater_config
    from ros2_erl_vlm.ros.rater_params import rater_settings

    try:
        check_rater_config(rater_settings(params))
    except (ParamError, ValueError) as exc:
        where = f" ({params['rater.config_file']})" if params.get("rater.config_file") else ""
        raise GraphError(f"vlm_rater: rater{where}: {exc}") from exc


def check_params(graph: Graph, values: dict[str, str]) -> None:
    """Validate the params file plus argument overrides for every node; GraphError names the
    node and parameter of the first problem."""
    sections = read_params_file(values["params_file"])
    known = all_param_names()
    overrides = graph.node_overrides(values)
    for node in graph.nodes:
        given = {**node_params_from_file(sections, fqn(values.get("namespace", ""), node.name)),
                 **overrides[node.name]}
        own = {s.name: s for s in node.params}
        for key in given:
            if key not in own and key not in known and not is_builtin(key):
                raise GraphError(f"{node.name}: unknown parameter '{key}' in {values['params_file']}")
        try:
            checked = {k: own[k].check(v) for k, v in given.items() if k in own}
            if node.name in ("reward_learner", "sac_agent"):
                loop_config({**{s.name: s.default for s in node.params}, **checked})
        except ParamError as exc:
            raise GraphError(f"{node.name}: {exc}") from exc
        if "task" in own:
            _check_task(node.name, {**{s.name: s.default for s in node.params}, **checked})
        if node.name == "vlm_rater" and node in graph.started(values):
            _check_rater({**{s.name: s.default for s in node.params}, **checked})
    if not is_sim(values):
        _check_real_arm(graph, values, overrides, sections)
    _check_image_reward(graph, values, overrides, sections)


def _check_image_reward(graph: Graph, values: dict[str, str], overrides: dict[str, dict[str, Any]],
                        sections: dict[str, dict[str, Any]]) -> None:
    """An image reward model (``reward.input_kind: image``) reads camera/frames: the agent and the
    learner must agree on it, and the camera and camera_capture's frames must be on."""
    def node(name: str) -> dict[str, Any]:
        return {**_node_values(values["params_file"], name),
                **node_params_from_file(sections, fqn(values.get("namespace", ""), name)),
                **overrides.get(name, {})}

    started = {n.name for n in graph.started(values)}
    if not {"sac_agent", "reward_learner"} <= started:
        return
    agent, learner = node("sac_agent"), node("reward_learner")
    kinds = {str(agent["reward.input_kind"]), str(learner["reward.input_kind"])}
    if len(kinds) > 1:
        raise GraphError("reward.input_kind differs between sac_agent and reward_learner "
                         f"({agent['reward.input_kind']} vs {learner['reward.input_kind']}): set it once, "
                         "under /** in the params file")
    if kinds != {"image"}:
        return
    if str(agent["reward_source"]) != "learned":
        return
    if "sim_bridge" in started and not parse_bool(str(node("sim_bridge")["camera.enabled"]),
                                                  "camera.enabled"):
        raise GraphError("reward.input_kind image reads camera frames: sim_bridge's camera.enabled "
                         "must be true")
    if not parse_bool(str(node("camera_capture")["publish_frames"]), "publish_frames"):
        raise GraphError("reward.input_kind image reads camera/frames: camera_capture's "
                         "publish_frames must be true")
    if not is_sim(values):
        # The agent acts on a step once its frame is there (or frame_wait_s passed): a wait close
        # to the arm's command timeout would turn one lost frame into a safety stop.
        from ros2_erl_vlm.core.safety.arm_config import load_arm_config

        arm = load_arm_config(values["arm_config"], values.get("arm") or None)
        timeout = arm.control.command_timeout_periods * arm.period_s
        for name, params in (("sac_agent", agent), ("reward_learner", learner)):
            if float(params["frame_wait_s"]) > timeout / 2:
                raise GraphError(f"{name}: parameter 'frame_wait_s' ({float(params['frame_wait_s']):g} s) "
                                 f"must be at most half the arm's command timeout ({timeout:g} s): "
                                 "a lost camera frame would stop the arm")


def _check_real_arm(graph: Graph, values: dict[str, str], overrides: dict[str, dict[str, Any]],
                    sections: dict[str, dict[str, Any]]) -> None:
    """use_sim:=false: the arm config is valid, and training on the arm is allowed explicitly."""
    from ros2_erl_vlm.core.safety.arm_config import ArmConfigError, load_arm_config

    try:
        load_arm_config(values["arm_config"], values.get("arm") or None)
    except ArmConfigError as exc:
        raise GraphError(str(exc)) from exc
    if is_deploy(values):
        return  # no learning: neither training permission nor a rater is needed (the policy's
        # state size is checked by deploy_agent when it loads the checkpoint)
    agent = {**_node_values(values["params_file"], "sac_agent"),
             **node_params_from_file(sections, fqn(values.get("namespace", ""), "sac_agent")),
             **overrides["sac_agent"]}
    if not agent.get("allow_real_training"):
        raise GraphError("use_sim:=false trains a policy online on the arm: say so with "
                         "allow_real_training:=true (a fake arm follows the same rule)")
    rater = {**_node_values(values["params_file"], "vlm_rater"),
             **node_params_from_file(sections, fqn(values.get("namespace", ""), "vlm_rater")),
             **overrides["vlm_rater"]}
    if rater.get("rater.backend") in TRUTH_RATERS:
        raise GraphError(f"use_sim:=false: the {rater['rater.backend']} rater rates from simulator "
                         f"truth, which an arm does not have (every query would abstain): use a VLM "
                         f"backend, e.g. rater:=transformers rater_config:=<file> (docs/raters.md)")


def write_overrides(node: NodeSpec, values: dict[str, str], overrides: dict[str, Any],
                    directory: str | Path) -> Path:
    """A params file with ``overrides`` under the node's fully qualified name.

    Given after the main params file it wins over every section there, also node-specific ones
    (``-p name:=value`` would not: rcl ranks it as a ``/**`` entry). launch_ros does the same.
    """
    path = Path(directory) / f"{node.name}.yaml"
    data = {fqn(values.get("namespace", ""), node.name): {"ros__parameters": dict(overrides)}}
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))
    return path


def ros_args(node: NodeSpec, values: dict[str, str], overrides_file: str | Path | None) -> list[str]:
    """``--ros-args`` of one node process (name, namespace, params files, log level)."""
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    ns = values.get("namespace", "").strip("/")
    if ns:
        args += ["-r", f"__ns:=/{ns}"]
    args += ["--params-file", values["params_file"]]
    if overrides_file is not None:
        args += ["--params-file", str(overrides_file)]
    level = values.get("log_level", "")
    if level:
        args += ["--log-level", level]
    return args


def node_command(node: NodeSpec, values: dict[str, str], overrides_file: str | Path | None) -> list[str]:
    """The command line of one node process (this interpreter, ``-m`` the node module)."""
    return [sys.executable, "-m", node.module, *ros_args(node, values, overrides_file)]
