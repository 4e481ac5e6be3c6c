"""The notebook front end: ``from labkit import notebook as nbk`` gives the helpers every notebook uses
(:mod:`.helpers`: ``nbk.setup()`` …); the consumer panel is :mod:`.panel`, the exercises :mod:`.exercises`."""

from .helpers import *  # noqa: F401,F403 - the notebooks' one import
from .checks import Checks, ChecksFailed  # noqa: F401 - every notebook's final checks
from .shards import ClusterLab, setup_cluster  # noqa: F401 - notebook 13's set-up
