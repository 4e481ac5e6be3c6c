"""Print a pip constraints file that pins every dependency to the lower bound it declares.

CI installs the suite with it (``pip install -r requirements-dev.txt -c <this output>``) so the
bounds in requirements*.txt are tested, not guessed.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for name in sys.argv[1:] or ["requirements.txt", "requirements-dev.txt", "requirements-class.txt"]:
    for line in (ROOT / name).read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^\s,;#]*)", line)
        if m:
            print(f"{m.group(1)}=={m.group(3)}")
