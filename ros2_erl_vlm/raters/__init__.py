"""raters layer of erl_vlm: rating backends behind the core rater interface.

Backends (one interface, :class:`~ros2_erl_vlm.core.rating.rater.Rater`; one result type,
:class:`~ros2_erl_vlm.core.rating.rater.RatingResult`):

* ``oracle`` (:mod:`.oracle`): simulator truth plus noise of a known rate;
* ``simulated_vlm`` (:mod:`.simulated_vlm`): simulator truth with errors shaped like a VLM's
  (near class boundaries, to the neighbouring class, deterministic per image);
* ``transformers`` (:mod:`.transformers_rater`): a local VLM checkpoint, constrained choice or
  free generation;
* ``openai`` (:mod:`.openai_rater`): any OpenAI-compatible server;
* ``replay`` (:mod:`.replay`): the answers of a recorded run.

Wrappers: :class:`.rating_log.RatingLogRater` (every result persisted before use) and
:class:`.cache.CachedRater` (repeated queries for free). :func:`make_rater` builds any of them
from a config. Heavy backends (torch/transformers, openai) are imported only when selected.
"""

from ros2_erl_vlm.raters.cache import CachedRater
from ros2_erl_vlm.raters.factory import BACKENDS, make_rater
from ros2_erl_vlm.raters.rating_log import RatingLogRater
from ros2_erl_vlm.raters.replay_rater import NOT_IN_LOG, ReplayRater
from ros2_erl_vlm.raters.stats import RaterStats

__all__ = [
    "BACKENDS",
    "NOT_IN_LOG",
    "CachedRater",
    "RaterStats",
    "RatingLogRater",
    "ReplayRater",
    "make_rater",
]
