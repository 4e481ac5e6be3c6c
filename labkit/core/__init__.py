"""The core pipeline: the course's ideas as pure functions (partition names, the hourly fold, ground truth)
and the thin Redis layer around them (producer, consumers and their state, leases, the partition manifest)."""
