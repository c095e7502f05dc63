"""Recording demonstrations: one MCAP bag per episode (:mod:`.mcap_episode`), the recorder node's
and the scripted expert's shared writer; :mod:`.export` turns a folder of bags into the flat
offline dataset (``docs/recording.md``). ROS-free: messages are serialised with ``rosbags``."""
