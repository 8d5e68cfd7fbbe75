"""In-repo Pants plugin: the `osiris_bundle` target, packaged hermetically from its source targets."""
