"""Running a class: each learner fenced in by a Redis ACL user, a JupyterHub spawn hook, the instructor's view.

:mod:`.fence` (ACL users), :mod:`.hub` (the spawn hook), :mod:`.cohort` (the instructor's view and resets),
:mod:`.local` (``python -m labkit class``: a JupyterHub on one machine), :mod:`.simulate` (a class under load).
"""
