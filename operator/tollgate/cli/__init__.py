"""The ``tollgate`` command (also installed as the kubectl plugin ``kubectl-tollgate``)."""
