"""The in-process ERL-VLM loop: its settings, metrics, schedule and the loop itself."""
