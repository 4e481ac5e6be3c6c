"""Where labkit's Redis is: ``REDIS_URL`` or the embedded server (:mod:`.connection`), the embedded server
itself (:mod:`.embedded`) and a local Redis Cluster (:mod:`.cluster`)."""
