"""docs/architecture.md stays true: every topic and node is in its tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ros2_erl_vlm.ros.node_params import NODE_PARAMS

DOC = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"


@pytest.mark.ros
def test_every_topic_is_documented_with_its_qos() -> None:
    from ros2_erl_vlm.ros import qos

    text = DOC.read_text()
    names = [v for k, v in vars(qos).items() if k.isupper() and isinstance(v, str)]
    assert len(names) >= 10
    for name in names:
        assert f"| `{name}`" in text, name


def test_every_node_is_documented() -> None:
    text = DOC.read_text()
    for node in NODE_PARAMS:
        assert f"| `{node}` |" in text, node
