"""Offline learning from recorded demonstrations: the dataset, IQL, behaviour cloning, the loop.

``dataset.py`` (load/validate an export, state normalisation, sparse and relabelled rewards),
``learned_reward.py`` (a reward ensemble as the relabelling function), ``networks.py`` (actor,
value), ``iql.py`` (IQL and the settings), ``bc.py`` (behaviour cloning), ``policy.py`` (the
deployable actor + normalisation), ``trainer.py`` (the training loop). See ``docs/offline.md``.
"""
