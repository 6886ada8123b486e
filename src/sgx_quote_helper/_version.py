"""Release and hosted-enclave versions.

The QE and PCE SVNs are properties of the software that hosts the enclaves (the
daemon release, or the library bundled into an in-process application), not of
the platform: that is how a TCB recovery followed by a daemon update is
simulated (DESIGN.md section 3).
"""

__version__ = "0.1.0"

#: ISVSVN of the Quoting Enclave (QE3) this release hosts.
QE_SVN = 10
#: ISVSVN of the Provisioning Certification Enclave this release hosts.
PCE_SVN = 13
