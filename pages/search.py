"""Search: a good learning rate in seconds, or a hyperparameter search whose every trial is a run.

The parts live in pages/_search.py; the work is core's (core.service.studies, core.engine.lrfind).
"""

from pages import _common, _search

_common.guarded(lambda: _search.page(_common.workspace()))
