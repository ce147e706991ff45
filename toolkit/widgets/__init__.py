"""Notebook UI (anywidget): live panels for ``tk.compare`` and a dashboard for ``tk.run``.

Only this package imports ipywidgets/anywidget. The kernel sends text deltas, coalesced to at
most one message per ``interval`` (20 a second) whatever the token rate, and one final state sync
so new views show everything. When the call ends, the output the view ``show()``-ed is replaced
by a static rendering (escaped ``text/html`` with inline styles, and ``text/plain``): JupyterLab
saves no widget state by default, so that is what a reopened notebook, nbconvert and GitHub
show. Model output is rendered as text nodes, and escaped in the static HTML.
"""

from .dashboard import DashboardView, RunDashboard
from .panels import ComparePanels, PanelsView

__all__ = ["ComparePanels", "DashboardView", "PanelsView", "RunDashboard"]
