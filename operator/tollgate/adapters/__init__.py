"""All I/O: kube/, metrics/, routers/, workloads/, notify/, telemetry/, each behind a small
Protocol picked by provider name. Empty until the first adapters land; the layer exists so the
import contracts cover it from the first commit.
"""
