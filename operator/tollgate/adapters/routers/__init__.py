"""Traffic routers: move a share of requests between the stable and the new version.

Each router touches only what Tollgate owns in the user's routing object, reads every write
back, and writes with a resourceVersion precondition so a concurrent edit is never lost.
"""
