"""One module per report kind; each registers itself with mlc.report._registry.register_kind.

Every public module here is imported on the first lookup of a kind: adding a kind (drift, model
comparison) is adding a module, and tests/report/data/<kind>.json with its golden renderings.
"""
