"""Service outages, scheduled maintenance and the public status page (issue 6, points 2–4)."""
