"""Small builders that run BESIDE the learner's code: apps that wrap a learner's function.

A check must not build its own route around a learner's function: when grading,
the check runs in a trusted process and the learner's code in a sandbox, and a
route in the check's process would run the learner's code there. A check asks
for one of these builders instead, through ``submission.build(harness.x, ...)``,
which runs it wherever the learner's code runs. Each builder takes only what can
cross the grader's channel (plain data, paths, the check's own iterators and
callables, the learner's own values) and returns an ASGI app for ``serve()``.
Nothing a builder computes is trusted: checks judge only what they observe.
"""

from __future__ import annotations

__all__: list[str] = []
