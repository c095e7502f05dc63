"""``python -m ros2_erl_vlm.report``: see :mod:`ros2_erl_vlm.report.cli`."""

import sys

from ros2_erl_vlm.report.cli import main

sys.exit(main())
