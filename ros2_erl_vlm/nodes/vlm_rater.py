"""``vlm_rater``: rating requests in, ratings out, through the core rater interface.

Subscribes to ``rating_requests/framed`` (erl_vlm/RatingRequest with frames, from camera_capture)
and publishes ``ratings`` (erl_vlm/Rating). The backend is any :func:`ros2_erl_vlm.raters.make_rater`
backend: the oracle (simulator truth + label noise) in simulation, or a VLM (transformers,
OpenAI-compatible HTTP, replay) configured by ``rater.config_file``.

* Every answer (rating or abstention) is appended and fsynced to ``<run_dir>/vlm_rater/ratings.erlr``
  *before* it is published. A request id already in the log (a re-sent request, also after a
  restart) is answered from the log, never rated twice.
* A failure is an abstention with a reason (backend error, malformed request), never a class.
* Work is bounded: requests wait in a queue of ``queue_size`` (the oldest dropped beyond it) and
  are dropped after ``max_request_age_s``; a worker thread rates them ``batch_size`` at a time,
  so a slow backend never blocks the node nor piles up stale work (the learner re-sends).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any

from erl_vlm.msg import Rating, RatingRequest

from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult, check_num_classes
from ros2_erl_vlm.core.rating.request_queue import RequestQueue
from ros2_erl_vlm.core.record_log import RecordLogError
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import query_from_request, rating_msg
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.params import ParamError
from ros2_erl_vlm.ros.rater_params import rater_settings


class VlmRater(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("bad_requests", "duplicate_requests", "answered_from_log", "abstained", "worker_errors")

    def __init__(self) -> None:
        super().__init__("vlm_rater")
        from ros2_erl_vlm.raters import RatingLogRater, make_rater
        from ros2_erl_vlm.raters.records import RESULT_KIND, result_from_meta, result_meta

        self._result_from_meta, self._result_meta, self._kind = result_from_meta, result_meta, RESULT_KIND
        node_dir = self.require_run_dir()
        try:
            inner = make_rater(rater_settings(self.p))
        except ValueError as exc:
            raise ParamError(f"rater: {exc}") from exc
        self.rater = RatingLogRater(inner, node_dir / "ratings.erlr",
                                    store_frames=bool(self.p["store_frames"]))
        self.lock = threading.Lock()
        self.answered: dict[str, dict[str, Any]] = {str(m.get("query_id")): m for m in self.rater.logged()}
        self.queue = RequestQueue(int(self.p["queue_size"]), float(self.p["max_request_age_s"]))
        self._drops_seen = (0, 0)  # queue drops already warned about
        self.pub = self.create_publisher(Rating, qos.RATINGS, qos.RATING_QOS)
        self.create_subscription(RatingRequest, qos.RATING_REQUESTS_FRAMED, self.on_request, qos.RATING_QOS)
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._work, name="rater", daemon=True)
        self.worker.start()
        self.get_logger().info(f"backend {self.rater.backend_id}; {len(self.answered)} answers in the log")
        if self.rater.log.recovered_tail_bytes:
            self.get_logger().warning(
                f"{self.rater.log.path}: cut a damaged tail of {self.rater.log.recovered_tail_bytes} bytes "
                f"left by a crash (the whole file was kept as {self.rater.log.backup_path})")

    # -- requests -------------------------------------------------------------------------------
    def on_request(self, msg: RatingRequest) -> None:
        """Answer from the log, reject malformed requests with an abstention, or queue."""
        rid = str(msg.request_id)
        if not rid:
            self.count("bad_requests", "dropped a request without request_id")
            return
        with self.lock:
            old = self.answered.get(rid)
        if old is not None:
            self.count("answered_from_log")
            self.pub.publish(rating_msg(self._result_from_meta(old), msg, self.get_clock().now().to_msg()))
            return
        try:
            query = query_from_request(msg)
        except ValueError as exc:
            self._reject(msg, f"malformed: {exc}")
            return
        if not self.queue.put(rid, (msg, query, "")):
            self.count("duplicate_requests")
        self._warn_drops()

    def _warn_drops(self) -> None:
        """Say so (throttled) when the bounded queue dropped requests; the learner re-sends them."""
        drops = (self.queue.dropped_full, self.queue.dropped_stale)
        if drops != self._drops_seen:
            self._drops_seen = drops
            self.get_logger().warning(
                f"rating queue dropped requests (full: {self.queue.dropped_full}, older than "
                f"max_request_age_s: {self.queue.dropped_stale}); the rater is slower than the "
                "requests arrive", throttle_duration_sec=10.0)

    def _reject(self, msg: RatingRequest, reason: str) -> None:
        try:
            check_num_classes(len(msg.class_names))
        except ValueError:
            self.count("bad_requests", f"dropped request {msg.request_id}: {reason}; bad class names")
            return
        self.count("bad_requests", f"request {msg.request_id}: {reason}")
        self.queue.put(str(msg.request_id), (msg, None, reason))  # answered (abstention) by the worker

    # -- the worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        """Worker thread: the only place that rates and writes the log.

        A failure to persist (disk full, I/O error) is fatal: a rating that cannot be written
        first must not be used, so the node stops (exit code 2) instead of answering unlogged.
        """
        while not self.stopping.is_set():
            try:
                self._work_once()
            except RecordLogError as exc:
                self.get_logger().fatal(f"cannot persist ratings, stopping: {exc}")
                self.finish(2)
                return
            except Exception:
                traceback.print_exc()
                self.count("worker_errors", "the rating worker hit an error (see the traceback); "
                           "continuing")

    def _work_once(self) -> None:
        """Take one batch from the queue and answer it."""
        batch = self.queue.take(int(self.p["batch_size"]), timeout_s=0.2)
        self._warn_drops()
        with self.lock:
            batch = [item for rid, item in batch if rid not in self.answered]
        rejected = [(msg, reason) for msg, query, reason in batch if query is None]
        for msg, reason in rejected:
            result = RatingResult(query_id=str(msg.request_id), label=None,
                                  num_classes=len(msg.class_names), backend=self.rater.backend_id,
                                  abstain_reason=reason, attempts=0)
            self._log_record(msg, result)
            self._publish(msg, result)
        todo = [(msg, query) for msg, query, _ in batch if query is not None]
        if todo:
            self._rate(todo)

    def _rate(self, todo: list[tuple[RatingRequest, RatingQuery]]) -> None:
        queries = [q for _, q in todo]
        # Persisted by RatingLogRater before returning; a backend failure comes back as logged
        # abstentions, so what raises here is the log itself (handled by the worker loop).
        results = self.rater.rate(queries)
        for (msg, _), result in zip(todo, results, strict=True):
            self._publish(msg, result)

    def _log_record(self, msg: RatingRequest, result: RatingResult) -> None:
        """Append a result the rater wrapper did not log (rejected requests)."""
        self.rater.log.append({"kind": self._kind, "time": time.time(), "episode": int(msg.episode),
                               "steps": [int(s) for s in msg.steps], "instruction": str(msg.instruction),
                               "class_names": list(msg.class_names), "content_key": "",
                               "fingerprint": self.rater.fingerprint, **self._result_meta(result)})

    def _publish(self, msg: RatingRequest, result: RatingResult) -> None:
        """Remember (for re-sent requests) and publish an already persisted result."""
        with self.lock:
            self.answered[result.query_id] = self._result_meta(result)
        self.counters["abstained" if result.label is None else "rated"] += 1
        self.pub.publish(rating_msg(result, msg, self.get_clock().now().to_msg()))

    def status(self) -> dict[str, Any]:
        """Queue and answer counts."""
        return {"backend": self.rater.backend_id, "answers_in_log": len(self.answered),
                "queued": len(self.queue), "dropped_full": self.queue.dropped_full,
                "dropped_stale": self.queue.dropped_stale}

    def close(self) -> None:
        """Stop the worker, close the log."""
        self.stopping.set()
        self.queue.close()
        self.worker.join(timeout=30)
        super().close()
        self.rater.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``vlm_rater`` executable."""
    return run_node(VlmRater, args)


if __name__ == "__main__":
    sys.exit(main())
