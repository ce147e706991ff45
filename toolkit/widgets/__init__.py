"""Notebook UI (anywidget): live panels for ``tk.compare`` and a dashboard for ``tk.run``.

Only this package imports ipywidgets/anywidget. The kernel sends text deltas, coalesced to at
most one message per ``interval`` (20 a second) whatever the token rate, and one final state sync
so saved notebooks and new views show everything. Model output is rendered as text nodes.
"""

from .dashboard import DashboardView, RunDashboard
from .panels import ComparePanels, PanelsView

__all__ = ["ComparePanels", "DashboardView", "PanelsView", "RunDashboard"]
