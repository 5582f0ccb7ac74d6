"""``python -m wslab.replica``, kept working: the replica lives in :mod:`wslab.challenge.replica`."""
