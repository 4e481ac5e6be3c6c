"""The notebook front end: ``from labkit import notebook as nbk`` gives the helpers every notebook uses
(:mod:`.helpers`: ``nbk.setup()`` …); the consumer panel is :mod:`.panel`, the exercises :mod:`.exercises`,
the stream browser :mod:`.browser` (``nbk.browse(lab)``) and the quizzes :mod:`.quiz`."""

from .helpers import *  # noqa: F401,F403 - the notebooks' one import
from .browser import StreamBrowser, browse  # noqa: F401 - see inside the streams
from .checks import Checks, ChecksFailed, NotAsExpected, expect  # noqa: F401 - the notebooks' checks
from .shards import ClusterLab, setup_cluster  # noqa: F401 - notebook 13's set-up
