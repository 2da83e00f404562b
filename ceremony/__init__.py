"""BYOK key ceremony workbook: move an HSM-generated key into Azure Key Vault or Managed HSM.

The package holds every piece of ceremony logic; notebooks and the command line only call it.
"""

__version__ = "0.1.0"
TOOL_NAME = "byok-ceremony"
