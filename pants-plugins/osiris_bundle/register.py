"""Pants 2.17 backend `osiris_bundle`: registers the `osiris_bundle` target type and its `package` rule."""

from osiris_bundle import rules as bundle_rules
from osiris_bundle.target_types import OsirisBundleTarget


def target_types():
    return [OsirisBundleTarget]


def rules():
    return [*bundle_rules.rules()]
