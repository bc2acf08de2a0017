"""Builders of tiny random models in the official file layout, for tests and `generate --random-weights`."""
