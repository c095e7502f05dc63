"""erl_vlm: robot learning from vision-language-model ratings (ERL-VLM) as a ROS 2 package.

Layers (each imports only those below it): ``nodes`` -> ``ros`` -> ``raters`` -> ``envs`` -> ``core``.
``core`` never imports rclpy.
"""

__version__ = "0.1.0"
