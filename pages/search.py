"""Search: a good learning rate in seconds, or a hyperparameter search whose every trial is a run.

The parts live in pages/_studies.py (not _search.py: Streamlit reads that name as a second "search"
page); the work is core's (core.service.studies, core.engine.lrfind).
"""

from pages import _common, _studies

_common.guarded(lambda: _studies.page(_common.workspace()))
