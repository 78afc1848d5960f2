"""The pricing service: what ships in the image (runtime/tools/ excepted)."""

# The release (CHANGELOG.md); `mc-pricing --version` and the package metadata read it.
__version__ = "0.3.0"
