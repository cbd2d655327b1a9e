"""Models that adapt while the stream runs: the online learner (:mod:`kstream.learning.online`)."""
