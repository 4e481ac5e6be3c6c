"""The terminal front end, ``python -m labkit …``: the CLI (:mod:`.cli`) and the commands that run the whole
pipeline (demo, bench, chaos, soak)."""
