"""`mlc profile`: load generation, resource sampling, the sweep, sizing and the report.

Importing this package never imports locust: the http load generator runs locust in its
own processes (see loadgen_http), because locust's gevent monkey-patching at import time
breaks threads and sockets in the process that imports it.
"""

from mlc.profile.runner import ProfileOptions, ProfileOutcome, profile

__all__ = ["ProfileOptions", "ProfileOutcome", "profile"]
