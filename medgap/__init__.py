"""medgap: medical image learning when the data have gaps (missing modalities, scarce labels, side modalities)."""

from medgap.errors import MedgapError

__version__ = "0.1.0"
__all__ = ["MedgapError", "__version__"]
