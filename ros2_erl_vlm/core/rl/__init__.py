"""Reinforcement learning: SAC, its replay buffer, PEBBLE's entropy reward, the online agent."""
